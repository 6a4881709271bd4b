"""Load the workflow's result files into tidy pandas frames, and describe pairs for display.

Inputs (docs/contracts.md, contracts 2 and 4; ``{pair}/{stage}/{dataset}`` is read from the path):

- ``results/hrsa/{pair}/{stage}/{dataset}/metrics.csv``: one row per value, columns
  ``metric, layer_base, layer_reason, k, value, ci_low, ci_high`` -> :func:`read_metrics`;
- ``results/hrsa/{pair}/{stage}/{dataset}/summary.json``: the headline numbers
  -> :func:`read_headlines` (one row per number);
- ``results/hrsa/{pair}/{stage}/{dataset}/probe.csv``: cross-model probe scores
  -> :func:`read_probes`;
- ``results/mteb/table1.csv``: mean benchmark scores per pair -> :func:`read_table1`;
- ``results/mteb/instructions.csv``: the instruction of every evaluated (task, subset) and its
  source -> :func:`read_instructions`.

Every frame carries ``pair, stage, dataset`` so that frames from many files concatenate.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hrsa.errors import DataError, config_error

# the evaluation stage owns this contract
from ..evaluate.aggregate import (
    INSTRUCTIONS_COLUMNS,
    TABLE1_COLUMNS,
    TABLE1_EMBEDDING_COLUMNS,
    read_instruction_table,
)

KEYS = ["pair", "stage", "dataset"]
METRICS_COLUMNS = ["metric", "layer_base", "layer_reason", "k", "value", "ci_low", "ci_high"]
HEADLINE_COLUMNS = [*KEYS, "quantity", "k", "value", "ci_low", "ci_high"]
PROBE_COLUMNS = ["direction", "split", "evaluated_on", "accuracy", "macro_f1", "weighted_f1"]
#: appended by a numeric target's (ridge) probe.csv; read_probes adds them to every frame
PROBE_REGRESSION_COLUMNS = ["r2", "r2_drop", "task"]

FAMILY_ORDER = ("SFT", "RLVR")
"""Families in display order (the paper shows the SFT control first)."""
SPLIT_ORDER = ("train", "dev", "test")
STAGE_NAMES = {"backbone": "LLM", "emb": "Embedding model"}
DATASET_LABELS = {"cot": "CoT", "mmlu_pro": "MMLU-Pro", "ag_news": "AG News"}
"""Display names of the paper's datasets; others show their key unless configured."""
_STEP = re.compile(r"^step(\d+)$")


# --------------------------------------------------------------------------- pairs for display


@dataclass(frozen=True)
class PairInfo:
    """One configured pair, with the names the report displays."""

    key: str
    base: str
    reasoning: str
    family: str
    algorithm: str
    label: str
    base_label: str
    reasoning_label: str

    @property
    def is_sft(self) -> bool:
        return self.family == "SFT"

    def model_labels(self, stage: str = "backbone") -> tuple[str, str]:
        """Full display names of the two models at ``stage`` (``-Emb`` added past the backbone)."""
        suffix = "" if stage == "backbone" else "-Emb"
        return self.base_label + suffix, self.reasoning_label + suffix

    def short_name(self, stage: str = "backbone") -> str:
        """The pair's short name, e.g. ``DS vs ProRL`` or ``DS-Emb vs ProRL-Emb``."""
        if stage == "backbone":
            return self.label
        sides = self.label.split(" vs ")
        if len(sides) == 2:
            return f"{sides[0]}-Emb vs {sides[1]}-Emb"
        return f"{self.label} (Emb)"

    def long_name(self, stage: str = "backbone") -> str:
        """The pair's full name from its models' labels, e.g. ``Qwen2.5-0.5B vs SimpleRL-Zoo``."""
        base, reasoning = self.model_labels(stage)
        return f"{base} vs {reasoning}"


def pairs_from_config(
    pairs: Mapping[str, Mapping], models: Mapping[str, Mapping] | None = None
) -> dict[str, PairInfo]:
    """Build :class:`PairInfo` objects from ``config["pairs"]`` and ``config["models"]``.

    ``config["pairs"][key]`` needs ``base``, ``reasoning`` (model keys) and ``family``
    (``SFT`` or ``RLVR``); ``algorithm`` and ``label`` are optional. A model's display name is
    ``config["models"][key]["label"]``, else its key. The result keeps config order.
    """
    models = models or {}
    out: dict[str, PairInfo] = {}
    for key, entry in pairs.items():
        for field in ("base", "reasoning", "family"):
            if field not in entry:
                raise config_error(
                    f"pairs.{key}.{field}", "missing (a pair needs base, reasoning, family)"
                )
        base_label = str((models.get(entry["base"]) or {}).get("label", entry["base"]))
        reasoning_label = str(
            (models.get(entry["reasoning"]) or {}).get("label", entry["reasoning"])
        )
        family = str(entry["family"]).upper()
        out[key] = PairInfo(
            key=key,
            base=entry["base"],
            reasoning=entry["reasoning"],
            family=family,
            algorithm=str(entry.get("algorithm", family)),
            label=str(entry.get("label") or f"{base_label} vs {reasoning_label}"),
            base_label=base_label,
            reasoning_label=reasoning_label,
        )
    return out


def ordered(pairs: Mapping[str, PairInfo], keys: Iterable[str] | None = None) -> list[PairInfo]:
    """Pairs in display order: SFT, then RLVR, then other families; config order within one."""
    chosen = [pairs[k] for k in keys] if keys is not None else list(pairs.values())

    def rank(p: PairInfo) -> int:
        return FAMILY_ORDER.index(p.family) if p.family in FAMILY_ORDER else len(FAMILY_ORDER)

    return sorted(chosen, key=rank)


def pair_info(pairs: Mapping[str, PairInfo], key: str) -> PairInfo:
    """The pair called ``key``; a result for an unconfigured pair is shown under its bare key."""
    if key in pairs:
        return pairs[key]
    return PairInfo(key, "base", "reasoning", "?", "?", key, "base", "reasoning")


def dataset_label(key: str, labels: Mapping[str, str] | None = None) -> str:
    """A dataset's display name: ``labels[key]``, else a built-in name, else the key."""
    return (labels or {}).get(key) or DATASET_LABELS.get(key, key)


def stage_step(stage: str) -> int | None:
    """The training step of a stage: ``step200`` -> 200, ``backbone`` -> 0, ``emb`` -> None."""
    if stage == "backbone":
        return 0
    match = _STEP.match(stage)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- readers


def locate(path: str | os.PathLike) -> tuple[str, str, str]:
    """``(pair, stage, dataset)`` of a file at ``.../{pair}/{stage}/{dataset}/<name>``."""
    parts = Path(path).parts
    if len(parts) < 4:
        raise DataError(f"{path}: expected .../{{pair}}/{{stage}}/{{dataset}}/<file>")
    return parts[-4], parts[-3], parts[-2]


def _read_csv(path: str | os.PathLike, required: Iterable[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path}: empty file") from error
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def _with_keys(frame: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
    pair, stage, dataset = locate(path)
    frame = frame.copy()
    frame.insert(0, "dataset", dataset)
    frame.insert(0, "stage", stage)
    frame.insert(0, "pair", pair)
    return frame


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def read_metrics(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate ``metrics.csv`` files: ``pair, stage, dataset`` + the file's columns.

    Layers and k become nullable integers (k is empty on rows that are not k-NN rows); missing
    ``ci_low``/``ci_high`` columns are added as NaN.
    """
    frames = []
    for path in paths:
        frame = _read_csv(path, ["metric", "layer_base", "layer_reason", "value"])
        for column in ("k", "ci_low", "ci_high"):
            if column not in frame.columns:
                frame[column] = np.nan
        for column in ("layer_base", "layer_reason", "k"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
        for column in ("value", "ci_low", "ci_high"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        frame["metric"] = frame["metric"].astype(str)
        frames.append(_with_keys(frame[METRICS_COLUMNS], path))
    return _concat(frames, [*KEYS, *METRICS_COLUMNS])


def _number(value) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _headline_rows(quantity: str, entry, k) -> list[dict]:
    if isinstance(entry, Mapping) and "value" in entry:
        return [
            {
                "quantity": quantity,
                "k": k,
                "value": _number(entry.get("value")),
                "ci_low": _number(entry.get("ci_low")),
                "ci_high": _number(entry.get("ci_high")),
            }
        ]
    if isinstance(entry, Mapping):  # nested by k, e.g. knn_overlap_mean: {"5": {...}}
        rows = []
        for sub_k, sub_entry in entry.items():
            rows += _headline_rows(quantity, sub_entry, int(sub_k))
        return rows
    return [
        {
            "quantity": quantity,
            "k": k,
            "value": _number(entry),
            "ci_low": math.nan,
            "ci_high": math.nan,
        }
    ]


def read_summary(path: str | os.PathLike) -> dict:
    """One ``summary.json`` as a dict; its ``pair, stage, dataset`` must match its path (they are
    filled from the path when absent or empty)."""
    try:
        with open(path, encoding="utf-8") as handle:
            summary = json.load(handle)
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error
    if "headline" not in summary:
        raise DataError(f"{path}: no 'headline' key")
    for key, value in zip(KEYS, locate(path), strict=True):
        if summary.get(key) and summary[key] != value:
            raise DataError(f"{path}: says {key} {summary[key]!r} but lies under {key} {value!r}")
        summary[key] = value
    return summary


def read_headlines(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The headline numbers of ``summary.json`` files, one row per number.

    Columns ``pair, stage, dataset, quantity, k, value, ci_low, ci_high``; ``quantity`` is the
    headline key (``linear_cka_diagonal_mean``, ``h_inv_final``, ``knn_overlap_mean`` ...) and
    ``k`` is set for k-NN numbers only.
    """
    rows = []
    for path in paths:
        summary = read_summary(path)
        for quantity, entry in summary["headline"].items():
            for row in _headline_rows(quantity, entry, None):
                rows.append({key: summary[key] for key in KEYS} | row)
    frame = pd.DataFrame(rows, columns=HEADLINE_COLUMNS)
    frame["k"] = pd.to_numeric(frame["k"]).astype("Int64")
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = frame[column].astype(float)
    return frame


def read_probe_metrics(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate ``probe_metrics.csv`` files (the labelled extra metrics of the cross-model
    probe): ``pair, stage, dataset, metric, value``."""
    frames = []
    for path in paths:
        try:
            frame = _read_csv(path, ["metric", "value"])
        except DataError as error:
            if "empty file" not in str(error):
                raise
            continue  # a numeric target's file: no class labels, no rows
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
        frames.append(_with_keys(frame[["metric", "value"]], path))
    return _concat(frames, [*KEYS, "metric", "value"])


def read_probes(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate ``probe.csv`` files: ``pair, stage, dataset`` + :data:`PROBE_COLUMNS` +
    :data:`PROBE_REGRESSION_COLUMNS`.

    A classification file (``accuracy``; the six columns, also as written before the ridge
    probe) gets ``r2``/``r2_drop`` NaN and ``task`` ``class``; a numeric target's file (``r2``)
    has NaN accuracy and F1 and ``task`` ``numeric``. Missing F1 columns are added as NaN.
    """
    frames = []
    for path in paths:
        frame = _read_csv(path, ["direction", "split", "evaluated_on"])
        if "accuracy" not in frame.columns and "r2" not in frame.columns:
            raise DataError(f"{path}: missing column(s) accuracy (or r2, for a numeric target)")
        if "task" not in frame.columns:
            frame["task"] = "numeric" if "accuracy" not in frame.columns else "class"
        for column in ("accuracy", "macro_f1", "weighted_f1", "r2", "r2_drop"):
            if column not in frame.columns:
                frame[column] = np.nan
            frame[column] = frame[column].astype(float)
        frame["task"] = frame["task"].astype(str)
        columns = [*PROBE_COLUMNS, *PROBE_REGRESSION_COLUMNS]
        frames.append(_with_keys(frame[columns], path))
    return _concat(frames, [*KEYS, *PROBE_COLUMNS, *PROBE_REGRESSION_COLUMNS])


def read_table1(path: str | os.PathLike) -> pd.DataFrame:
    """The evaluation stage's ``table1.csv`` (one row per pair and benchmark)."""
    frame = _read_csv(path, TABLE1_COLUMNS[:6])
    for column in ("delta_std", "n_seeds"):
        if column not in frame.columns:
            frame[column] = np.nan
    # which embedding model each member is: trained, or a published checkpoint (older CSVs
    # predate published checkpoints: trained)
    for column in TABLE1_EMBEDDING_COLUMNS:
        if column not in frame.columns:
            frame[column] = "trained"
    return frame[TABLE1_COLUMNS + TABLE1_EMBEDDING_COLUMNS]


def read_instructions(path: str | os.PathLike) -> pd.DataFrame:
    """The evaluation stage's ``instructions.csv`` (strings; empty for none). A table written
    without the run columns gets ``n_runs`` 1 and empty ``runs``."""
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    frame = read_instruction_table(path)
    if "n_runs" not in frame.columns:
        frame["n_runs"] = "1"
    if "runs" not in frame.columns:
        frame["runs"] = ""
    return frame[INSTRUCTIONS_COLUMNS]


# --------------------------------------------------------------------------- selections


def headline(
    headlines: pd.DataFrame,
    pair: str,
    stage: str,
    dataset: str,
    quantity: str,
    k: int | None = None,
) -> tuple[float, float, float]:
    """``(value, ci_low, ci_high)`` of one headline number; NaNs when it is absent."""
    rows = headlines[
        (headlines["pair"] == pair)
        & (headlines["stage"] == stage)
        & (headlines["dataset"] == dataset)
        & (headlines["quantity"] == quantity)
    ]
    rows = rows[rows["k"].isna()] if k is None else rows[rows["k"] == k]
    if rows.empty:
        return math.nan, math.nan, math.nan
    row = rows.iloc[0]
    return float(row["value"]), float(row["ci_low"]), float(row["ci_high"])


def select(frame: pd.DataFrame, **where) -> pd.DataFrame:
    """Rows of ``frame`` whose columns equal the given values (``None`` matches missing)."""
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column].isna() if value is None else frame[column] == value
    return frame[mask]


def layer_matrix(
    metrics: pd.DataFrame, metric: str, pair: str, stage: str, dataset: str
) -> np.ndarray:
    """The layer-by-layer matrix of ``metric``: rows = base layer, columns = reasoning layer.

    Shape (max base layer + 1, max reasoning layer + 1); cells without a row are NaN.
    """
    rows = select(metrics, metric=metric, pair=pair, stage=stage, dataset=dataset)
    rows = rows.dropna(subset=["layer_base", "layer_reason"])
    if rows.empty:
        return np.full((0, 0), np.nan)
    base = rows["layer_base"].to_numpy(dtype=int)
    reasoning = rows["layer_reason"].to_numpy(dtype=int)
    matrix = np.full((base.max() + 1, reasoning.max() + 1), np.nan)
    matrix[base, reasoning] = rows["value"].to_numpy(dtype=float)
    return matrix


def diagonal_curve(
    metrics: pd.DataFrame,
    metric: str,
    pair: str,
    stage: str,
    dataset: str,
    k: int | None = None,
) -> pd.DataFrame:
    """Layer i vs layer i rows of ``metric`` (optionally one k): ``layer, value, ci_low, ci_high``."""
    where = {"metric": metric, "pair": pair, "stage": stage, "dataset": dataset}
    if k is not None:
        where["k"] = k
    rows = select(metrics, **where)
    rows = rows[rows["layer_base"] == rows["layer_reason"]]
    curve = rows.rename(columns={"layer_base": "layer"})[["layer", "value", "ci_low", "ci_high"]]
    return curve.sort_values("layer").reset_index(drop=True)


def probe_accuracy(
    probes: pd.DataFrame,
    pair: str,
    stage: str,
    dataset: str,
    direction: str = "base_to_reasoning",
) -> pd.DataFrame:
    """Accuracy by split (rows, train/dev/test order) and evaluated model (columns base, reasoning)."""
    rows = select(probes, pair=pair, stage=stage, dataset=dataset, direction=direction)
    table = rows.pivot_table(
        index="split", columns="evaluated_on", values="accuracy", aggfunc="mean"
    )
    splits = [s for s in SPLIT_ORDER if s in table.index] + [
        s for s in table.index if s not in SPLIT_ORDER
    ]
    return table.reindex(index=splits, columns=["base", "reasoning"])
