"""The problems of one CoT source (``cot_generation.sources.<key>``): a Hub dataset or a local file.

A source spec names where the problems are (``hub_id`` with ``config``/``split``/``revision``, or
``local``: a JSONL or parquet file), which field holds the problem (``problem_field``), optionally
its id (``id_field``) and reference answer (``answer_field``), ``filters`` (field -> value or list
of values), a seeded random ``sample`` and a cap ``limit``. Order of operations, as the authors'
``run_qwen3_competition_math.py`` does it: filter; number the filtered rows ``0..n-1`` (the
question id is ``{split}_{index}`` unless ``id_field`` names one); draw ``sample`` indices with
``random.Random(seed).sample(range(n), sample)`` - the same draw as their ``random.seed(seed);
random.sample(...)`` - in the drawn order; then keep the first ``limit``.

The output is JSONL, one problem per line: ``id``, ``problem``, ``source``, ``tier``, ``dataset``,
``config``, ``split``, ``index`` and ``reference_answer`` (None without ``answer_field``; never
shown to the judge: Prompt 4 has no reference answer).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path

from ..atomic import atomic_path
from ..errors import DataError

log = logging.getLogger("hrsa.cot.sources")

PROBLEM_KEYS = (
    "id",
    "problem",
    "source",
    "tier",
    "dataset",
    "config",
    "split",
    "index",
    "reference_answer",
)


def _read_rows(spec: Mapping, *, mirror=None) -> tuple[list[dict], str]:
    """The source's rows and its name (hub id or file path)."""
    if spec.get("local"):
        path = Path(spec["local"])
        if not path.is_file():
            raise DataError(f"{path}: CoT problem file not found")
        if path.suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(path).to_dict("records"), str(path)
        from ..data.probe import iter_jsonl

        rows = []
        for lineno, row in iter_jsonl(path):
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: not a JSON object")
            rows.append(row)
        return rows, str(path)
    from ..data import remote

    ds = remote.load_hub_dataset(
        spec["hub_id"],
        name=spec.get("config"),
        split=spec.get("split", "test"),
        revision=spec.get("revision"),
        mirror=mirror,
        what=f"CoT problem source {spec['hub_id']!r}",
    )
    return [dict(r) for r in ds], spec["hub_id"]


def select_problems(key: str, spec: Mapping, rows: list[dict], dataset: str) -> list[dict]:
    """The problems of source ``key`` from its ``rows`` (see the module docstring)."""
    where = f"CoT source {key!r} ({dataset})"
    for name, want in (spec.get("filters") or {}).items():
        allowed = want if isinstance(want, list) else [want]
        if rows and name not in rows[0]:
            raise DataError(
                f"{where}: filter field {name!r} is not in the data ({sorted(rows[0])})"
            )
        rows = [r for r in rows if r.get(name) in allowed]
    if not rows:
        raise DataError(f"{where}: no rows left after the filters {spec.get('filters')}")
    split = spec.get("split", "test")
    field, id_field = spec.get("problem_field", "problem"), spec.get("id_field")
    answer_field = spec.get("answer_field")
    for name in (field, id_field, answer_field):
        if name is not None and name not in rows[0]:
            raise DataError(f"{where}: no field {name!r} in the data (fields: {sorted(rows[0])})")
    indices = list(range(len(rows)))
    if spec.get("sample") is not None:
        k = int(spec["sample"])
        if k > len(rows):
            raise DataError(
                f"{where}: a sample of {k} problems needs at least as many rows; "
                f"{len(rows)} pass the filters"
            )
        indices = random.Random(int(spec.get("seed", 42))).sample(indices, k)
    if spec.get("limit") is not None:
        indices = indices[: int(spec["limit"])]
    problems, seen = [], {}
    for i in indices:
        row = rows[i]
        text = row.get(field)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: row {i}: field {field!r} is not a non-empty text")
        pid = str(row[id_field]) if id_field is not None else f"{split}_{i}"
        if pid in seen:
            raise DataError(f"{where}: id {pid!r} of row {i} repeats that of row {seen[pid]}")
        seen[pid] = i
        answer = row.get(answer_field) if answer_field is not None else None
        problems.append(
            {
                "id": pid,
                "problem": text,
                "source": key,
                "tier": spec["tier"],
                "dataset": dataset,
                "config": spec.get("config"),
                "split": split,
                "index": i,
                "reference_answer": None if answer is None else str(answer),
            }
        )
    log.info("%s: %d problems of %d rows", where, len(problems), len(rows))
    return problems


def load_problems(key: str, spec: Mapping, *, mirror=None) -> list[dict]:
    """Read source ``key`` and select its problems."""
    rows, dataset = _read_rows(spec, mirror=mirror)
    return select_problems(key, spec, rows, dataset)


def write_problems(key: str, spec: Mapping, out: str | os.PathLike, *, mirror=None) -> list[dict]:
    """Materialise source ``key``'s problems as JSONL at ``out`` (atomically)."""
    problems = load_problems(key, spec, mirror=mirror)
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for p in problems:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    return problems


def read_problems(path: str | os.PathLike) -> list[dict]:
    """The problems written by :func:`write_problems`."""
    from ..data.probe import iter_jsonl

    problems = [row for _, row in iter_jsonl(path)]
    for p in problems:
        missing = [k for k in PROBLEM_KEYS if k not in p]
        if missing:
            raise DataError(f"{path}: a problem lacks {missing}; rerun cot_problems")
    return problems
