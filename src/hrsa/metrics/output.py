"""Atomic writes of result tables and summaries (temporary sibling file + ``os.replace``)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path


def _atomic(path: str | os.PathLike, write) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        write(fh)
    return path


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return repr(float(v))
    if isinstance(v, np.integer):
        return int(v)
    return v


def atomic_write_csv(path, columns: list[str], records: list[dict]) -> Path:
    """Write ``records`` (dicts keyed by ``columns``) as CSV; None becomes an empty cell."""

    def write(fh):
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow({c: _cell(r.get(c)) for c in columns})

    return _atomic(path, write)


def jsonable(obj):
    """Plain JSON types; NaN/Inf become null (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def atomic_write_json(path, obj) -> Path:
    return _atomic(
        path, lambda fh: fh.write(json.dumps(jsonable(obj), indent=1, allow_nan=False) + "\n")
    )
