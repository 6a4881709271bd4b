"""hrsa.report.verdicts: Table 2's verdicts from numbers and declared thresholds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hrsa.errors import ConfigError
from hrsa.report import collect, verdicts

PAIRS = collect.pairs_from_config(
    {
        "rl": {"base": "a", "reasoning": "b", "family": "RLVR", "label": "A vs B"},
        "sft": {"base": "c", "reasoning": "d", "family": "SFT", "label": "C vs D"},
    }
)


def headlines(pair, stage, h_inv, correlation, cka, knn10):
    rows = [
        (pair, stage, "cot", "h_inv_final", None, h_inv),
        (pair, stage, "cot", "dimension_wise_correlation_diagonal_mean", None, correlation),
        (pair, stage, "cot", "linear_cka_diagonal_mean", None, cka),
        (pair, stage, "cot", "knn_overlap_mean", 10, knn10),
        (pair, stage, "cot", "knn_overlap_mean", 5, 0.99),  # another k: must be ignored
    ]
    frame = pd.DataFrame([(*r, math.nan, math.nan) for r in rows], columns=collect.HEADLINE_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")
    return frame


def probes(pair, stage, base, reasoning, split="test"):
    rows = [
        (pair, stage, "ag", "base_to_reasoning", split, "base", base, 0, 0),
        (pair, stage, "ag", "base_to_reasoning", split, "reasoning", reasoning, 0, 0),
        (pair, stage, "ag", "reasoning_to_base", split, "base", 0.0, 0, 0),
    ]
    return pd.DataFrame(rows, columns=collect.KEYS + collect.PROBE_COLUMNS)


def by_focus(frame, pair, stage):
    mine = frame[(frame["pair"] == pair) & (frame["stage"] == stage)]
    return mine.groupby("focus", sort=False)["verdict"].first().to_dict()


def test_rlvr_like_numbers_give_the_papers_rlvr_column():
    h = headlines("rl", "backbone", h_inv=0.95, correlation=0.8, cka=0.95, knn10=0.48)
    frame = verdicts.verdicts(h, PAIRS, "cot", probes("rl", "backbone", 0.90, 0.88), "ag")
    assert by_focus(frame, "rl", "backbone") == {
        "coordinate basis": "preserved",
        "global geometry": "isometric",
        "local geometry": "reorganised",
        "linear readout": "transferred",
        "manifold status": "trajectory optimisation",
    }


def test_sft_like_numbers_give_the_papers_sft_column():
    h = headlines("sft", "backbone", h_inv=0.108, correlation=0.1, cka=0.6, knn10=0.068)
    frame = verdicts.verdicts(h, PAIRS, "cot", probes("sft", "backbone", 0.9, 0.5), "ag")
    assert by_focus(frame, "sft", "backbone") == {
        "coordinate basis": "mixed",
        "global geometry": "distorted",
        "local geometry": "reorganised",
        "linear readout": "degraded",
        "manifold status": "restructuring",
    }


def test_basis_needs_both_numbers_and_thresholds_are_inclusive():
    t = dict(verdicts.DEFAULT_THRESHOLDS)
    h = headlines(
        "rl",
        "emb",
        h_inv=t["h_inv_min"],
        correlation=0.1,
        cka=t["linear_cka_min"],
        knn10=t["knn_overlap_min"],
    )
    frame = verdicts.verdicts(h, PAIRS, "cot")
    result = by_focus(frame, "rl", "emb")
    assert result["coordinate basis"] == "mixed"  # H_inv passes, correlation fails
    assert result["global geometry"] == "isometric"  # equal to the threshold passes
    assert result["local geometry"] == "preserved"
    assert result["manifold status"] == "realigned"
    assert result["linear readout"] == verdicts.NOT_AVAILABLE  # no probe data


def test_thresholds_from_config_override_defaults():
    h = headlines("rl", "backbone", h_inv=0.95, correlation=0.8, cka=0.95, knn10=0.48)
    frame = verdicts.verdicts(h, PAIRS, "cot", thresholds={"knn_overlap_min": 0.4})
    assert by_focus(frame, "rl", "backbone")["local geometry"] == "preserved"
    rows = frame[frame["focus"] == "local geometry"]
    assert rows["metric"].tolist() == ["knn_overlap_mean_k10"]
    assert rows["value"].tolist() == [0.48] and rows["threshold"].tolist() == [0.4]


def test_probe_drop_on_configured_split():
    h = headlines("rl", "backbone", 0.9, 0.9, 0.95, 0.8)
    p = pd.concat([probes("rl", "backbone", 0.9, 0.89), probes("rl", "backbone", 0.9, 0.5, "dev")])
    thresholds = {"probe_split": "dev"}
    frame = verdicts.verdicts(h, PAIRS, "cot", p, "ag", thresholds=thresholds)
    assert by_focus(frame, "rl", "backbone")["linear readout"] == "degraded"
    row = frame[frame["focus"] == "linear readout"].iloc[0]
    assert row["value"] == pytest.approx(0.4) and row["metric"] == "probe_accuracy_drop_dev"


def test_missing_numbers_are_not_available():
    h = headlines("rl", "backbone", math.nan, 0.9, math.nan, 0.8)
    result = by_focus(verdicts.verdicts(h, PAIRS, "cot"), "rl", "backbone")
    assert result["coordinate basis"] == verdicts.NOT_AVAILABLE
    assert result["global geometry"] == verdicts.NOT_AVAILABLE
    assert result["manifold status"] == verdicts.NOT_AVAILABLE


def test_unknown_threshold_key_fails():
    with pytest.raises(ConfigError, match="cka_min"):
        verdicts.thresholds_from_config({"cka_min": 0.9})


def test_table2_markdown_one_row_per_pair_and_stage():
    h = pd.concat(
        [
            headlines("rl", "backbone", 0.95, 0.8, 0.95, 0.48),
            headlines("rl", "emb", 0.9, 0.9, 0.97, 0.45),
            headlines("sft", "backbone", 0.1, 0.1, 0.6, 0.06),
        ]
    )
    frame = verdicts.verdicts(h, PAIRS, "cot")
    table = verdicts.table2(frame, PAIRS, {})
    lines = table.markdown.splitlines()
    assert lines[0] == (
        "| Model pair | Coordinate basis | Global geometry | Local geometry | Linear readout "
        "| Manifold status |"
    )
    assert lines[2].startswith(
        "| SFT: C vs D | mixed (H_inv 0.10, ρ 0.10) | distorted (CKA 0.60) |"
    )
    assert lines[3].startswith("| RLVR: A vs B | preserved")
    assert lines[4].startswith("| → A-Emb vs B-Emb | preserved")
    assert lines[4].endswith("| realigned |")
    assert "k=10 ≥ 0.7" in table.markdown
    assert list(table.frame.columns) == verdicts.VERDICT_COLUMNS
