"""Table 2's verdicts, derived from the numbers with declared thresholds.

Each pair and stage gets one verdict per HRSA focus, so a new pair is classified without anyone
reading heatmaps; above the pairs, one row per family (SFT, RLVR) and stage gives the verdicts of
the paper's Table 2, from each number aggregated over the family's pairs (median by default,
``family_aggregate``) and judged with the same thresholds. The thresholds are
``config["report"]["verdicts"]`` (defaults: the config schema's, collected in
:data:`DEFAULT_THRESHOLDS`, where every key is explained). A verdict whose numbers are missing
is ``n/a``; a threshold set to ``None`` (YAML ``null``) leaves its number in the evidence without
letting it decide.

- coordinate basis (representation level): ``h_inv_final`` and
  ``dimension_wise_correlation_diagonal_mean`` -> ``preserved`` if both reach their minimum,
  else ``mixed``;
- global geometry (geometry level): ``linear_cka_diagonal_mean`` -> ``isometric`` / ``distorted``;
- local geometry (geometry level): the k-NN overlap layer mean at ``knn_k`` -> ``preserved`` /
  ``reorganised``; ``knn_layers`` picks the mean that decides (``transformer``: hidden states
  1..L, ``all``: 0..L), the other is shown beside it;
- linear readout (function level): accuracy of the base-fitted probe on the base model minus on
  the reasoning model (``probe.csv``, ``probe_split``) -> ``transferred`` / ``degraded``;
- manifold status (summary, from global geometry): LLMs ``trajectory optimisation`` /
  ``restructuring``; embedding models ``realigned`` / ``not realigned``.

The paper's Table 2 columns are the family rows SFT/LLMs, RLVR/LLMs and RLVR/embedding models
(its "Post-CL" column).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hrsa.config import schema_default
from hrsa.errors import config_error
from hrsa.report.collect import FAMILY_ORDER, PairInfo, headline, pair_info, probe_accuracy
from hrsa.report.tables import ARROW, MAIN_STAGES, Table, markdown_table, pairs_with_data, row_name


def _default(key: str):
    """The schema's default of ``report.verdicts.<key>`` (the schema owns every default)."""
    return schema_default(f"report.verdicts.{key}")


#: Defaults of ``config["report"]["verdicts"]``: the schema's (``report.verdicts.<key>``); what
#: each one decides is said here.
DEFAULT_THRESHOLDS: dict[str, float | int | str | None] = {
    # Coordinate basis is "preserved" when O* is close to a permutation (H_inv of the final
    # hidden state at least h_inv_min; a random rotation gives ~0.1-0.2) ...
    "h_inv_min": _default("h_inv_min"),
    # ... and features already align one-to-one without any rotation (signed mean over layers
    # i vs i of the dimension-wise correlation, at least this).
    "dimension_wise_correlation_min": _default("dimension_wise_correlation_min"),
    # Global geometry is "isometric" when the diagonal mean of linear CKA reaches this.
    "linear_cka_min": _default("linear_cka_min"),
    # Local geometry is "preserved" when the mean k-NN overlap (Jaccard) at knn_k reaches this.
    "knn_k": _default("knn_k"),
    "knn_overlap_min": _default("knn_overlap_min"),
    # Which k-NN layer mean decides: "transformer" (hidden states 1..L) or "all" (0..L, the
    # paper's Table 4 definition). Default transformer: at layer 0 (the embedding lookup) repeated
    # tokens are tied rows and the overlap there reflects the tie-break rule, not the models
    # (1.0 here, ~0.1-0.3 in the authors' code); both means are always shown.
    "knn_layers": _default("knn_layers"),
    # Linear readout is "transferred" when the probe fitted on the base model loses at most this
    # much accuracy (absolute, 0-1) on the reasoning model, on probe_split.
    "probe_split": _default("probe_split"),
    "probe_accuracy_drop_max": _default("probe_accuracy_drop_max"),
    # Family rows: each number aggregated over the family's pairs ("median" or "mean"; pairs
    # without the number are left out), then judged with the thresholds above.
    "family_aggregate": _default("family_aggregate"),
}
CHOICES = {"knn_layers": ("transformer", "all"), "family_aggregate": ("median", "mean")}
AGGREGATES = {"median": np.median, "mean": np.mean}

FOCI = (
    ("representation", "coordinate basis"),
    ("geometry", "global geometry"),
    ("geometry", "local geometry"),
    ("function", "linear readout"),
    ("summary", "manifold status"),
)
OUTCOMES = {
    "coordinate basis": ("preserved", "mixed"),
    "global geometry": ("isometric", "distorted"),
    "local geometry": ("preserved", "reorganised"),
    "linear readout": ("transferred", "degraded"),
}
VERDICT_COLUMNS = [
    "scope",
    "pair",
    "family",
    "stage",
    "model_pair",
    "level",
    "focus",
    "verdict",
    "metric",
    "value",
    "threshold",
    "rule",
    "decides",
    "n_pairs",
]
NOT_AVAILABLE = "n/a"
STAGE_GROUPS = {"backbone": "LLMs", "emb": "embedding models"}


def thresholds_from_config(settings: Mapping | None) -> dict:
    """:data:`DEFAULT_THRESHOLDS` updated with ``config["report"]["verdicts"]``; unknown keys and
    values outside :data:`CHOICES` fail."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise config_error(
            "report.verdicts", f"unknown key(s) {unknown}; known: {sorted(DEFAULT_THRESHOLDS)}"
        )
    for key, allowed in CHOICES.items():
        if key in settings and settings[key] not in allowed:
            raise config_error(
                f"report.verdicts.{key}", f"{settings[key]!r} is not one of {list(allowed)}"
            )
    return DEFAULT_THRESHOLDS | settings


#: the summary.json headline of each k-NN layer mean (``knn_layers``)
KNN_QUANTITY = {
    "transformer": "knn_overlap_mean_transformer_layers",  # hidden states 1..L
    "all": "knn_overlap_mean",  # 0..L
}


def knn_metric(k: int, layers: str) -> str:
    """Name of a k-NN layer mean in the verdict frame: ``knn_overlap_mean_k10`` (0..L) or
    ``knn_overlap_mean_transformer_layers_k10`` (1..L)."""
    if layers == "transformer":
        return f"knn_overlap_mean_transformer_layers_k{k}"
    return f"knn_overlap_mean_k{k}"


def criteria(thresholds: Mapping) -> dict[str, list[tuple[str, float | None, str]]]:
    """Per focus, the ``(metric, threshold, rule)`` of each number behind its verdict; a
    threshold of ``None`` shows the number without letting it decide."""
    t = thresholds_from_config(thresholds)
    k = int(t["knn_k"])
    other = "all" if t["knn_layers"] == "transformer" else "transformer"
    return {
        "coordinate basis": [
            ("h_inv_final", t["h_inv_min"], ">="),
            ("dimension_wise_correlation_diagonal_mean", t["dimension_wise_correlation_min"], ">="),
        ],
        "global geometry": [("linear_cka_diagonal_mean", t["linear_cka_min"], ">=")],
        "local geometry": [
            (knn_metric(k, t["knn_layers"]), t["knn_overlap_min"], ">="),
            (knn_metric(k, other), None, ">="),
        ],
        "linear readout": [
            (f"probe_accuracy_drop_{t['probe_split']}", t["probe_accuracy_drop_max"], "<=")
        ],
    }


def _passes(value: float, threshold: float, rule: str) -> bool:
    return value >= threshold if rule == ">=" else value <= threshold


def _verdict(numbers: Sequence[tuple[str, float, float | None, str]], yes: str, no: str) -> str:
    """``yes`` if every deciding (metric, value, threshold, rule) passes, ``no`` if one fails,
    n/a when a deciding number is missing or none decides."""
    deciding = [(v, th, rule) for _, v, th, rule in numbers if th is not None]
    if not deciding or any(math.isnan(v) for v, _, _ in deciding):
        return NOT_AVAILABLE
    return yes if all(_passes(v, th, rule) for v, th, rule in deciding) else no


def _probe_drop(probes, pair, stage, dataset, split) -> float:
    """Accuracy of the base-fitted probe on the base model minus on the reasoning model."""
    if probes is None or dataset is None or probes.empty:
        return math.nan
    table = probe_accuracy(probes, pair, stage, dataset)
    if split not in table.index:
        return math.nan
    return float(table.loc[split, "base"] - table.loc[split, "reasoning"])


def _manifold_status(stage: str, global_geometry: str) -> str:
    if global_geometry == NOT_AVAILABLE:
        return NOT_AVAILABLE
    if stage == "backbone":
        return "trajectory optimisation" if global_geometry == "isometric" else "restructuring"
    return "realigned" if global_geometry == "isometric" else "not realigned"


def judge(numbers: Mapping[str, float], stage: str, thresholds: Mapping) -> list[dict]:
    """The verdict of every focus from ``numbers`` (metric name -> value; absent = NaN), one
    dict per number behind it: ``level, focus, verdict, metric, value, threshold, rule,
    decides``."""
    rows, outcome = [], {}
    spec = criteria(thresholds)
    for focus, (yes, no) in OUTCOMES.items():
        evidence = [(m, float(numbers.get(m, math.nan)), th, rule) for m, th, rule in spec[focus]]
        outcome[focus] = _verdict(evidence, yes, no)
        spec[focus] = evidence
    outcome["manifold status"] = _manifold_status(stage, outcome["global geometry"])
    spec["manifold status"] = spec["global geometry"]
    for level, focus in FOCI:
        for metric, value, threshold, rule in spec[focus]:
            rows.append(
                {
                    "level": level,
                    "focus": focus,
                    "verdict": outcome[focus],
                    "metric": metric,
                    "value": value,
                    "threshold": math.nan if threshold is None else threshold,
                    "rule": rule,
                    "decides": threshold is not None,
                }
            )
    return rows


def pair_numbers(
    headlines: pd.DataFrame,
    pair: str,
    stage: str,
    dataset: str,
    thresholds: Mapping,
    probes: pd.DataFrame | None = None,
    probe_dataset: str | None = None,
) -> dict[str, float]:
    """Every number a verdict of ``pair`` at ``stage`` reads, by its metric name."""
    t = thresholds_from_config(thresholds)
    k = int(t["knn_k"])

    def number(quantity: str, k: int | None = None) -> float:
        return headline(headlines, pair, stage, dataset, quantity, k)[0]

    split = t["probe_split"]
    return {
        "h_inv_final": number("h_inv_final"),
        "dimension_wise_correlation_diagonal_mean": number(
            "dimension_wise_correlation_diagonal_mean"
        ),
        "linear_cka_diagonal_mean": number("linear_cka_diagonal_mean"),
        knn_metric(k, "all"): number(KNN_QUANTITY["all"], k),
        knn_metric(k, "transformer"): number(KNN_QUANTITY["transformer"], k),
        f"probe_accuracy_drop_{split}": _probe_drop(probes, pair, stage, probe_dataset, split),
    }


def aggregate_numbers(
    per_pair: Sequence[Mapping[str, float]], how: str = _default("family_aggregate")
) -> tuple[dict[str, float], dict[str, int]]:
    """Each number aggregated over pairs (``median`` or ``mean`` of the pairs that have it) and
    how many pairs went into it."""
    values, counts = {}, {}
    for metric in dict.fromkeys(m for numbers in per_pair for m in numbers):
        have = np.array([n.get(metric, math.nan) for n in per_pair], dtype=float)
        have = have[np.isfinite(have)]
        values[metric] = float(AGGREGATES[how](have)) if have.size else math.nan
        counts[metric] = int(have.size)
    return values, counts


def family_label(family: str, stage: str, n_pairs: int, how: str) -> str:
    """``RLVR family, LLMs (median of 7 pairs)``."""
    group = STAGE_GROUPS.get(stage, stage)
    plural = "pair" if n_pairs == 1 else "pairs"
    return f"{family} family, {group} ({how} of {n_pairs} {plural})"


def verdicts(
    headlines: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    dataset: str,
    probes: pd.DataFrame | None = None,
    probe_dataset: str | None = None,
    thresholds: Mapping | None = None,
    stages: Sequence[str] = MAIN_STAGES,
) -> pd.DataFrame:
    """One row per family or pair, stage, focus and number behind it (columns
    :data:`VERDICT_COLUMNS`): first the family rows (``scope`` ``family``, ``pair`` empty), then
    the pairs (``scope`` ``pair``).

    ``dataset`` is the HRSA dataset the representation and geometry verdicts read (the paper's
    CoT dataset); ``probe_dataset`` the labelled dataset of the readout verdict.
    """
    t = thresholds_from_config(thresholds)
    how = str(t["family_aggregate"])
    on_dataset = headlines[headlines["dataset"] == dataset]
    pair_rows: list[dict] = []
    by_family: dict[tuple[str, str], list[dict[str, float]]] = {}
    for pair in pairs_with_data(on_dataset, pairs):
        for stage in stages:
            if not ((on_dataset["pair"] == pair.key) & (on_dataset["stage"] == stage)).any():
                continue
            numbers = pair_numbers(headlines, pair.key, stage, dataset, t, probes, probe_dataset)
            if pair.family != "?":
                by_family.setdefault((pair.family, stage), []).append(numbers)
            for row in judge(numbers, stage, t):
                pair_rows.append(
                    {
                        "scope": "pair",
                        "pair": pair.key,
                        "family": pair.family,
                        "stage": stage,
                        "model_pair": pair.short_name(stage),
                    }
                    | row
                    | {"n_pairs": 1}
                )
    family_rows: list[dict] = []
    families = [f for f in FAMILY_ORDER if any(f == fam for fam, _ in by_family)]
    families += [f for f in dict.fromkeys(fam for fam, _ in by_family) if f not in families]
    for family in families:
        for stage in stages:
            members = by_family.get((family, stage))
            if not members:
                continue
            numbers, counts = aggregate_numbers(members, how)
            for row in judge(numbers, stage, t):
                family_rows.append(
                    {
                        "scope": "family",
                        "pair": "",
                        "family": family,
                        "stage": stage,
                        "model_pair": family_label(family, stage, len(members), how),
                    }
                    | row
                    | {"n_pairs": counts.get(row["metric"], 0)}
                )
    return pd.DataFrame(family_rows + pair_rows, columns=VERDICT_COLUMNS)


_SHORT_METRIC = {
    "h_inv_final": "H_inv",
    "dimension_wise_correlation_diagonal_mean": "ρ",
    "linear_cka_diagonal_mean": "CKA",
}


def short_metric(metric: str) -> str:
    """Display name of a verdict number: ``H_inv``, ``k-NN@10 (1..L)``, ``Δacc`` ..."""
    if metric in _SHORT_METRIC:
        return _SHORT_METRIC[metric]
    if metric.startswith("knn_overlap_mean_transformer_layers_k"):
        return f"k-NN@{metric.removeprefix('knn_overlap_mean_transformer_layers_k')} (1..L)"
    if metric.startswith("knn_overlap_mean_k"):
        return f"k-NN@{metric.removeprefix('knn_overlap_mean_k')} (0..L)"
    if metric.startswith("probe_accuracy_drop"):
        return "Δacc"
    return metric


def _evidence(rows: pd.DataFrame) -> str:
    parts = []
    for _, row in rows.iterrows():
        value = "–" if pd.isna(row["value"]) else f"{row['value']:.2f}"
        parts.append(f"{short_metric(row['metric'])} {value}")
    return ", ".join(parts)


def _cells(rows: pd.DataFrame, foci: Sequence[str]) -> list[str]:
    cells = []
    for focus in foci:
        focus_rows = rows[rows["focus"] == focus]
        if focus_rows.empty:
            cells.append("–")
            continue
        verdict = focus_rows["verdict"].iloc[0]
        cells.append(
            verdict if focus == "manifold status" else f"{verdict} ({_evidence(focus_rows)})"
        )
    return cells


def table2(frame: pd.DataFrame, pairs: Mapping[str, PairInfo], thresholds: Mapping) -> Table:
    """Table 2: one column per focus (the verdict and its numbers); first one row per family and
    stage (the paper's Table 2), then one row per pair and stage."""
    t = thresholds_from_config(thresholds)
    foci = [focus for _, focus in FOCI]
    scope = frame["scope"] if "scope" in frame.columns else pd.Series("pair", index=frame.index)
    families, per_pair = frame[scope == "family"], frame[scope != "family"]
    rows = []
    for family, stage in dict.fromkeys(zip(families["family"], families["stage"], strict=True)):
        mine = families[(families["family"] == family) & (families["stage"] == stage)]
        name = mine["model_pair"].iloc[0]
        rows.append([f"**{name}**" if stage == "backbone" else f"{ARROW} **{name}**"])
        rows[-1] += _cells(mine, foci)
    for pair in pairs_with_data(per_pair, pairs):
        for stage in dict.fromkeys(per_pair.loc[per_pair["pair"] == pair.key, "stage"]):
            mine = per_pair[(per_pair["pair"] == pair.key) & (per_pair["stage"] == stage)]
            rows.append([row_name(pair_info(pairs, pair.key), stage), *_cells(mine, foci)])
    header = ["Model pair", *(f.capitalize() for f in foci)]
    layers = (
        "transformer layers 1..L" if t["knn_layers"] == "transformer" else "all hidden states 0..L"
    )

    def bound(key: str) -> str:
        return "null (shown, not deciding)" if t[key] is None else str(t[key])

    rules = (
        f"Coordinate basis preserved if H_inv ≥ {bound('h_inv_min')} and mean diagonal "
        f"dimension-wise correlation ρ ≥ {bound('dimension_wise_correlation_min')}; global "
        f"geometry isometric if mean diagonal linear CKA ≥ {bound('linear_cka_min')}; local "
        f"geometry preserved if the mean k-NN overlap at k={t['knn_k']} over {layers} ≥ "
        f"{bound('knn_overlap_min')} (report.verdicts.knn_layers: "
        f"{t['knn_layers']}; the other layer mean is shown beside it: 0..L includes layer 0, the "
        "embedding lookup, where repeated tokens are tied rows and the overlap reflects the "
        "tie-break rule); linear readout transferred if the base-fitted probe loses ≤ "
        f"{bound('probe_accuracy_drop_max')} accuracy on the reasoning model ({t['probe_split']} "
        "split). Manifold status follows global geometry: backbone isometric → trajectory "
        "optimisation, distorted → restructuring; embedding models isometric → realigned.\n\n"
        f"Family rows (bold) judge each number's {t['family_aggregate']} over the family's pairs "
        "that have it (report.verdicts.family_aggregate) with the same thresholds; they are the "
        "paper's Table 2 (its columns: SFT LLMs, RLVR LLMs, and the RLVR embedding models as "
        "Post-CL). The rows below them judge each pair on its own."
    )
    return Table(
        title="Table 2: HRSA verdicts per family and per pair",
        frame=frame,
        markdown=markdown_table(header, rows, align="l" * len(header)) + "\n" + rules + "\n",
    )
