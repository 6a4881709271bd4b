"""RLVR vs SFT: is the RLVR pair closer to its base than the SFT pair? (with Table 2)

The paper's central finding, stated as a comparison rather than a threshold verdict: post-training
by RLVR leaves a model closer to its base than SFT does, in the coordinate basis (H_inv of O*),
the global geometry (linear CKA) and the local geometry (k-NN overlap). This module sets the two
families side by side for each of those numbers (and the dimension-wise correlation, shown), at
each stage with both families, and says which family is closer and whether the intervals
separate them.

- A family's number is its pairs' ``family_aggregate`` (median by default), as Table 2's family
  rows use. Its interval is the bootstrap interval of the HRSA engine (``ci_low``/``ci_high`` of
  ``summary.json``) when the family has one pair, and the envelope of its pairs' intervals (lowest
  low, highest high) when it has several: a deliberately wide band, so "separate" means every
  RLVR pair's interval lies above (or below) every SFT pair's.
- Every number here is a similarity (higher = closer to the base). ``closer`` is the family with
  the higher number; ``intervals`` is ``separate`` when the two intervals do not overlap,
  ``overlap`` when they do and ``none`` when the engine gave no interval.
- The intervals resample the probe sequences (the engine's bootstrap); they say nothing of the
  variation between training seeds, which can be the larger one (README, "What the default run
  produces": on the tiny pairs the embedding-model order flipped between seeds while every
  interval was separate). A finding needs several seeds or several pairs.
- A number the run did not compute (``hrsa.metrics``) or a stage where one family has no pair is
  reported as not tested, never as a finding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hrsa.report.collect import PairInfo, headline
from hrsa.report.tables import MAIN_STAGES, format_interval, markdown_table, pairs_with_data
from hrsa.report.verdicts import (
    AGGREGATES,
    KNN_QUANTITY,
    STAGE_GROUPS,
    knn_metric,
    short_metric,
    thresholds_from_config,
)

FAMILIES = ("RLVR", "SFT")
#: The numbers the finding is about, in the order shown; ρ is shown but does not decide.
DECIDING = ("linear_cka_diagonal_mean", "h_inv_final", "knn")
SHOWN = ("dimension_wise_correlation_diagonal_mean",)
CONTRAST_COLUMNS = [
    "stage",
    "metric",
    "decides",
    "rlvr_pairs",
    "rlvr_value",
    "rlvr_ci_low",
    "rlvr_ci_high",
    "sft_pairs",
    "sft_value",
    "sft_ci_low",
    "sft_ci_high",
    "difference",
    "closer",
    "intervals",
]


def _quantity(metric: str, thresholds: Mapping) -> tuple[str, str, int | None]:
    """(metric name in the frame, summary.json quantity, k) of one of :data:`DECIDING`/SHOWN."""
    if metric != "knn":
        return metric, metric, None
    k, layers = int(thresholds["knn_k"]), str(thresholds["knn_layers"])
    return knn_metric(k, layers), KNN_QUANTITY[layers], k


def _family_number(
    triples: Sequence[tuple[float, float, float]], how: str
) -> tuple[int, float, float, float]:
    """(pairs with the number, aggregate, interval low, interval high) of one family."""
    have = [t for t in triples if math.isfinite(t[0])]
    if not have:
        return 0, math.nan, math.nan, math.nan
    values = np.array([t[0] for t in have])
    lows = np.array([t[1] for t in have])
    highs = np.array([t[2] for t in have])
    if np.isfinite(lows).all() and np.isfinite(highs).all():
        low, high = float(lows.min()), float(highs.max())
    else:
        low = high = math.nan
    return len(have), float(AGGREGATES[how](values)), low, high


def _compare(rlvr: tuple, sft: tuple) -> tuple[float, str, str]:
    """(difference RLVR - SFT, closer family, intervals) from two :func:`_family_number`."""
    if not (rlvr[0] and sft[0]):
        return math.nan, "", ""
    difference = rlvr[1] - sft[1]
    closer = "RLVR" if difference > 0 else "SFT" if difference < 0 else "tie"
    if not all(math.isfinite(v) for v in (*rlvr[2:], *sft[2:])):
        return difference, closer, "none"
    separate = rlvr[2] > sft[3] or sft[2] > rlvr[3]
    return difference, closer, "separate" if separate else "overlap"


def rlvr_vs_sft(
    headlines: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    dataset: str,
    thresholds: Mapping | None = None,
    stages: Sequence[str] = MAIN_STAGES,
) -> pd.DataFrame:
    """One row per stage with both families and per number (columns :data:`CONTRAST_COLUMNS`),
    from the headline numbers of ``dataset`` (the paper's CoT dataset)."""
    t = thresholds_from_config(thresholds)
    how = str(t["family_aggregate"])
    on_dataset = headlines[headlines["dataset"] == dataset]
    members = {
        family: [p for p in pairs_with_data(on_dataset, pairs) if p.family == family]
        for family in FAMILIES
    }
    rows = []
    for stage in stages:
        staged = on_dataset[on_dataset["stage"] == stage]
        by_family = {
            f: [p for p in members[f] if (staged["pair"] == p.key).any()] for f in FAMILIES
        }
        if not all(by_family.values()):
            continue
        for metric in (*DECIDING, *SHOWN):
            name, quantity, k = _quantity(metric, t)
            numbers = {
                f: _family_number(
                    [headline(headlines, p.key, stage, dataset, quantity, k) for p in by_family[f]],
                    how,
                )
                for f in FAMILIES
            }
            difference, closer, intervals = _compare(numbers["RLVR"], numbers["SFT"])
            row = {"stage": stage, "metric": name, "decides": metric in DECIDING}
            for f in FAMILIES:
                n, value, low, high = numbers[f]
                row |= {
                    f"{f.lower()}_pairs": n,
                    f"{f.lower()}_value": value,
                    f"{f.lower()}_ci_low": low,
                    f"{f.lower()}_ci_high": high,
                }
            rows.append(row | {"difference": difference, "closer": closer, "intervals": intervals})
    return pd.DataFrame(rows, columns=CONTRAST_COLUMNS)


def finding(frame: pd.DataFrame, stage: str) -> str:
    """One sentence: does the RLVR family sit closer to its base than the SFT family at ``stage``
    in every deciding number, and do the intervals separate them?"""
    rows = frame[(frame["stage"] == stage) & frame["decides"]]
    names = {m: short_metric(m) for m in rows["metric"]}
    tested = rows[rows["closer"] != ""]
    untested = [names[m] for m in rows.loc[rows["closer"] == "", "metric"]]
    if tested.empty:
        return "not tested (no deciding number was computed for both families)."
    rlvr = tested[tested["closer"] == "RLVR"]
    other = tested[tested["closer"] != "RLVR"]
    overlap = [names[m] for m in rlvr.loc[rlvr["intervals"] != "separate", "metric"]]
    if other.empty:
        text = "**holds**: the RLVR pair is closer to its base in " + ", ".join(
            names[m] for m in rlvr["metric"]
        )
        text += (
            f" (intervals overlap in {', '.join(overlap)})"
            if overlap
            else " (every interval separate)"
        )
    elif rlvr.empty:
        text = "**does not hold**: the SFT pair is at least as close in " + ", ".join(
            names[m] for m in other["metric"]
        )
    else:
        text = (
            f"**holds in part**: RLVR closer in {', '.join(names[m] for m in rlvr['metric'])}"
            + (f" (intervals overlap in {', '.join(overlap)})" if overlap else "")
            + f"; SFT at least as close in {', '.join(names[m] for m in other['metric'])}"
        )
    if untested:
        text += f"; not tested: {', '.join(untested)} (not computed)"
    return text + "."


def contrast_markdown(frame: pd.DataFrame, thresholds: Mapping | None = None) -> str:
    """The section under Table 2: the sentence per stage, then the numbers behind it."""
    t = thresholds_from_config(thresholds)
    heading = "## RLVR vs SFT: is the RLVR pair closer to its base?\n\n"
    if frame.empty:
        return heading + (
            "Not tested: it needs, at some stage, a pair of family RLVR and a pair of family SFT "
            "with HRSA results on the main dataset.\n"
        )
    lines = []
    for stage in dict.fromkeys(frame["stage"]):
        lines.append(f"- **{STAGE_GROUPS.get(stage, stage)}**: {finding(frame, stage)}")
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for f in ("rlvr", "sft"):
            value = format_interval(row[f"{f}_value"], row[f"{f}_ci_low"], row[f"{f}_ci_high"])
            cells.append(f"{value} ({row[f'{f}_pairs']})")
        rows.append(
            [
                STAGE_GROUPS.get(row["stage"], row["stage"]),
                short_metric(row["metric"]) + ("" if row["decides"] else " (shown)"),
                *cells,
                row["closer"] or "not tested",
                row["intervals"] or "–",
            ]
        )
    header = ["Stage", "Number", "RLVR family (pairs)", "SFT family (pairs)", "Closer", "Intervals"]
    rule = (
        "The paper's finding: RLVR leaves a model closer to its base than SFT does, in CKA, H_inv "
        f"and k-NN overlap (k={t['knn_k']}, the layer mean Table 2 uses). Each family's number is "
        f"the {t['family_aggregate']} over its pairs; the interval in brackets is the HRSA "
        "engine's bootstrap interval for a one-pair family and the envelope of the pairs' "
        'intervals otherwise. "separate": the two intervals do not overlap. The intervals '
        "resample the probe sequences; they do not cover the variation between training seeds. "
        "ρ is shown and does not decide."
    )
    return (
        heading
        + "\n".join(lines)
        + "\n\n"
        + markdown_table(header, rows, align="llllll")
        + "\n"
        + rule
        + "\n"
    )
