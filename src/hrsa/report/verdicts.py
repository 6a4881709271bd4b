"""Table 2's verdicts, derived from the numbers with declared thresholds.

Each pair and stage gets one verdict per HRSA focus, so a new pair is classified without anyone
reading heatmaps. The thresholds are ``config["report"]["verdicts"]`` (defaults in
:data:`DEFAULT_THRESHOLDS`, every key documented there). A verdict whose numbers are missing is
``n/a``.

- coordinate basis (representation level): ``h_inv_final`` and
  ``dimension_wise_correlation_diagonal_mean`` -> ``preserved`` if both reach their minimum,
  else ``mixed``;
- global geometry (geometry level): ``linear_cka_diagonal_mean`` -> ``isometric`` / ``distorted``;
- local geometry (geometry level): ``knn_overlap_mean`` at ``knn_k`` -> ``preserved`` /
  ``reorganised``;
- linear readout (function level): accuracy of the base-fitted probe on the base model minus on
  the reasoning model (``probe.csv``, ``probe_split``) -> ``transferred`` / ``degraded``;
- manifold status (summary, from global geometry): LLMs ``trajectory optimisation`` /
  ``restructuring``; embedding models ``realigned`` / ``not realigned``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from hrsa.errors import ConfigError
from hrsa.report.collect import PairInfo, headline, pair_info, probe_accuracy
from hrsa.report.tables import MAIN_STAGES, Table, markdown_table, pairs_with_data, row_name

DEFAULT_THRESHOLDS: dict[str, float | int | str] = {
    # Coordinate basis is "preserved" when O* is close to a permutation ...
    "h_inv_min": 0.4,  # H_inv of the final hidden state at least this (a random rotation gives ~0.1-0.2)
    # ... and features already align one-to-one without any rotation.
    "dimension_wise_correlation_min": 0.5,  # signed mean over layers i vs i, at least this
    # Global geometry is "isometric" when the diagonal mean of linear CKA reaches this.
    "linear_cka_min": 0.9,
    # Local geometry is "preserved" when the mean k-NN overlap (Jaccard) at knn_k reaches this.
    "knn_k": 10,
    "knn_overlap_min": 0.7,
    # Linear readout is "transferred" when the probe fitted on the base model loses at most this
    # much accuracy (absolute, 0-1) on the reasoning model, on probe_split.
    "probe_split": "test",
    "probe_accuracy_drop_max": 0.05,
}

FOCI = (
    ("representation", "coordinate basis"),
    ("geometry", "global geometry"),
    ("geometry", "local geometry"),
    ("function", "linear readout"),
    ("summary", "manifold status"),
)
VERDICT_COLUMNS = [
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
]
NOT_AVAILABLE = "n/a"


def thresholds_from_config(settings: Mapping | None) -> dict:
    """:data:`DEFAULT_THRESHOLDS` updated with ``config["report"]["verdicts"]``; unknown keys fail."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise ConfigError(
            f"config['report']['verdicts'] has unknown key(s) {unknown}; "
            f"known: {sorted(DEFAULT_THRESHOLDS)}"
        )
    return DEFAULT_THRESHOLDS | settings


def _passes(value: float, threshold: float, rule: str) -> bool:
    return value >= threshold if rule == ">=" else value <= threshold


def _verdict(numbers: Sequence[tuple[str, float, float, str]], yes: str, no: str) -> str:
    """``yes`` if every (metric, value, threshold, rule) passes, ``no`` if one fails, else n/a."""
    if any(math.isnan(value) for _, value, _, _ in numbers):
        return NOT_AVAILABLE
    return yes if all(_passes(v, t, rule) for _, v, t, rule in numbers) else no


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


def verdicts(
    headlines: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    dataset: str,
    probes: pd.DataFrame | None = None,
    probe_dataset: str | None = None,
    thresholds: Mapping | None = None,
    stages: Sequence[str] = MAIN_STAGES,
) -> pd.DataFrame:
    """One row per pair, stage, focus and number behind it (columns :data:`VERDICT_COLUMNS`).

    ``dataset`` is the HRSA dataset the representation and geometry verdicts read (the paper's
    CoT dataset); ``probe_dataset`` the labelled dataset of the readout verdict.
    """
    t = thresholds_from_config(thresholds)
    k = int(t["knn_k"])
    on_dataset = headlines[headlines["dataset"] == dataset]
    rows: list[dict] = []
    for pair in pairs_with_data(on_dataset, pairs):
        for stage in stages:
            if not ((on_dataset["pair"] == pair.key) & (on_dataset["stage"] == stage)).any():
                continue

            def number(quantity: str, k: int | None = None, stage=stage, pair=pair) -> float:
                return headline(headlines, pair.key, stage, dataset, quantity, k)[0]

            cka = ("linear_cka_diagonal_mean", number("linear_cka_diagonal_mean"))
            evidence = {
                "coordinate basis": [
                    ("h_inv_final", number("h_inv_final"), t["h_inv_min"], ">="),
                    (
                        "dimension_wise_correlation_diagonal_mean",
                        number("dimension_wise_correlation_diagonal_mean"),
                        t["dimension_wise_correlation_min"],
                        ">=",
                    ),
                ],
                "global geometry": [(*cka, t["linear_cka_min"], ">=")],
                "local geometry": [
                    (
                        f"knn_overlap_mean_k{k}",
                        number("knn_overlap_mean", k),
                        t["knn_overlap_min"],
                        ">=",
                    )
                ],
                "linear readout": [
                    (
                        f"probe_accuracy_drop_{t['probe_split']}",
                        _probe_drop(probes, pair.key, stage, probe_dataset, t["probe_split"]),
                        t["probe_accuracy_drop_max"],
                        "<=",
                    )
                ],
            }
            outcome = {
                "coordinate basis": _verdict(evidence["coordinate basis"], "preserved", "mixed"),
                "global geometry": _verdict(evidence["global geometry"], "isometric", "distorted"),
                "local geometry": _verdict(evidence["local geometry"], "preserved", "reorganised"),
                "linear readout": _verdict(evidence["linear readout"], "transferred", "degraded"),
            }
            outcome["manifold status"] = _manifold_status(stage, outcome["global geometry"])
            evidence["manifold status"] = evidence["global geometry"]
            for level, focus in FOCI:
                for metric, value, threshold, rule in evidence[focus]:
                    rows.append(
                        {
                            "pair": pair.key,
                            "family": pair.family,
                            "stage": stage,
                            "model_pair": pair.short_name(stage),
                            "level": level,
                            "focus": focus,
                            "verdict": outcome[focus],
                            "metric": metric,
                            "value": value,
                            "threshold": threshold,
                            "rule": rule,
                        }
                    )
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


_SHORT_METRIC = {
    "h_inv_final": "H_inv",
    "dimension_wise_correlation_diagonal_mean": "ρ",
    "linear_cka_diagonal_mean": "CKA",
}


def _evidence(rows: pd.DataFrame) -> str:
    parts = []
    for _, row in rows.iterrows():
        name = _SHORT_METRIC.get(row["metric"], row["metric"])
        if name.startswith("knn_overlap_mean_k"):
            name = "k-NN@" + name.removeprefix("knn_overlap_mean_k")
        elif name.startswith("probe_accuracy_drop"):
            name = "Δacc"
        value = "–" if pd.isna(row["value"]) else f"{row['value']:.2f}"
        parts.append(f"{name} {value}")
    return ", ".join(parts)


def table2(frame: pd.DataFrame, pairs: Mapping[str, PairInfo], thresholds: Mapping) -> Table:
    """Table 2: one row per pair and stage, one column per focus: the verdict and its numbers."""
    t = thresholds_from_config(thresholds)
    foci = [focus for _, focus in FOCI]
    rows = []
    for pair in pairs_with_data(frame, pairs):
        for stage in dict.fromkeys(frame.loc[frame["pair"] == pair.key, "stage"]):
            mine = frame[(frame["pair"] == pair.key) & (frame["stage"] == stage)]
            cells = [row_name(pair_info(pairs, pair.key), stage)]
            for focus in foci:
                focus_rows = mine[mine["focus"] == focus]
                if focus_rows.empty:
                    cells.append("–")
                    continue
                verdict = focus_rows["verdict"].iloc[0]
                cells.append(
                    verdict
                    if focus == "manifold status"
                    else f"{verdict} ({_evidence(focus_rows)})"
                )
            rows.append(cells)
    header = ["Model pair", *(f.capitalize() for f in foci)]
    rules = (
        f"Coordinate basis preserved if H_inv ≥ {t['h_inv_min']} and mean diagonal "
        f"dimension-wise correlation ρ ≥ {t['dimension_wise_correlation_min']}; global geometry "
        f"isometric if mean diagonal linear CKA ≥ {t['linear_cka_min']}; local geometry preserved "
        f"if mean k-NN overlap at k={t['knn_k']} ≥ {t['knn_overlap_min']}; linear readout "
        f"transferred if the base-fitted probe loses ≤ {t['probe_accuracy_drop_max']} accuracy on "
        f"the reasoning model ({t['probe_split']} split). Manifold status follows global "
        "geometry: backbone isometric → trajectory optimisation, distorted → restructuring; "
        "embedding models isometric → realigned."
    )
    return Table(
        title="Table 2: HRSA verdicts per pair",
        frame=frame,
        markdown=markdown_table(header, rows, align="l" * len(header)) + "\n" + rules + "\n",
    )
