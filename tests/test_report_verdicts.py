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


def headlines(pair, stage, h_inv, correlation, cka, knn10, knn10_all=None):
    """``knn10``: the k=10 mean over transformer layers 1..L; ``knn10_all`` over 0..L (default
    ``knn10 + 0.05``, as a tied layer 0 raises it)."""
    knn10_all = knn10 + 0.05 if knn10_all is None else knn10_all
    rows = [
        (pair, stage, "cot", "h_inv_final", None, h_inv),
        (pair, stage, "cot", "dimension_wise_correlation_diagonal_mean", None, correlation),
        (pair, stage, "cot", "linear_cka_diagonal_mean", None, cka),
        (pair, stage, "cot", "knn_overlap_mean_transformer_layers", 10, knn10),
        (pair, stage, "cot", "knn_overlap_mean", 10, knn10_all),
        (pair, stage, "cot", "knn_overlap_mean", 5, 0.99),  # another k: must be ignored
        (pair, stage, "cot", "knn_overlap_mean_transformer_layers", 5, 0.99),
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


def family_focus(frame, family, stage):
    mine = frame[
        (frame["scope"] == "family") & (frame["family"] == family) & (frame["stage"] == stage)
    ]
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
    rows = frame[(frame["focus"] == "local geometry") & (frame["scope"] == "pair")]
    assert rows["metric"].tolist() == [
        "knn_overlap_mean_transformer_layers_k10",  # decides (knn_layers: transformer)
        "knn_overlap_mean_k10",  # shown beside it
    ]
    assert rows["value"].tolist() == pytest.approx([0.48, 0.53])
    assert rows["threshold"].iloc[0] == 0.4 and math.isnan(rows["threshold"].iloc[1])
    assert rows["decides"].tolist() == [True, False]


def test_knn_layers_picks_the_deciding_layer_mean():
    # 0..L inflated by a tied layer 0 passes; the transformer layers alone do not
    h = headlines("rl", "backbone", 0.95, 0.8, 0.95, knn10=0.65, knn10_all=0.72)
    default = verdicts.verdicts(h, PAIRS, "cot")
    assert by_focus(default, "rl", "backbone")["local geometry"] == "reorganised"
    every = verdicts.verdicts(h, PAIRS, "cot", thresholds={"knn_layers": "all"})
    assert by_focus(every, "rl", "backbone")["local geometry"] == "preserved"
    rows = every[(every["focus"] == "local geometry") & (every["scope"] == "pair")]
    assert rows["metric"].tolist()[0] == "knn_overlap_mean_k10"
    markdown = verdicts.table2(default, PAIRS, {}).markdown
    assert "reorganised (k-NN@10 (1..L) 0.65, k-NN@10 (0..L) 0.72)" in markdown
    assert "over transformer layers 1..L ≥ 0.7 (report.verdicts.knn_layers: transformer" in markdown
    with pytest.raises(ConfigError, match=r"config key report\.verdicts\.knn_layers: 'embedding'"):
        verdicts.thresholds_from_config({"knn_layers": "embedding"})


def test_null_threshold_shows_the_number_without_deciding():
    h = headlines("rl", "backbone", h_inv=0.95, correlation=0.1, cka=0.95, knn10=0.48)
    frame = verdicts.verdicts(h, PAIRS, "cot", thresholds={"dimension_wise_correlation_min": None})
    assert by_focus(frame, "rl", "backbone")["coordinate basis"] == "preserved"
    rows = frame[(frame["focus"] == "coordinate basis") & (frame["scope"] == "pair")]
    assert rows["decides"].tolist() == [True, False]
    markdown = verdicts.table2(frame, PAIRS, {"dimension_wise_correlation_min": None}).markdown
    assert "preserved (H_inv 0.95, ρ 0.10)" in markdown
    assert "ρ ≥ null (shown, not deciding)" in markdown


def test_family_rows_aggregate_each_number_over_the_familys_pairs():
    pairs = collect.pairs_from_config(
        {f"rl{i}": {"base": f"b{i}", "reasoning": f"r{i}", "family": "RLVR"} for i in range(3)}
        | {"sft": {"base": "c", "reasoning": "d", "family": "SFT"}}
    )
    h = pd.concat(
        [
            headlines("rl0", "backbone", h_inv=0.16, correlation=0.8, cka=0.95, knn10=0.4),
            headlines("rl1", "backbone", h_inv=0.66, correlation=0.7, cka=0.92, knn10=0.5),
            headlines("rl2", "backbone", h_inv=0.99, correlation=math.nan, cka=0.5, knn10=0.9),
            headlines("sft", "backbone", h_inv=0.1, correlation=0.1, cka=0.6, knn10=0.06),
        ]
    )
    p = pd.concat([probes("rl0", "backbone", 0.9, 0.88), probes("rl1", "backbone", 0.9, 0.86)])
    frame = verdicts.verdicts(h, pairs, "cot", p, "ag")
    assert frame["scope"].tolist()[: (frame["scope"] == "family").sum()] == (
        ["family"] * (frame["scope"] == "family").sum()
    )  # family rows come first
    assert by_focus(frame, "rl0", "backbone")["coordinate basis"] == "mixed"  # 0.16 alone
    rlvr = family_focus(frame, "RLVR", "backbone")
    assert rlvr == {
        "coordinate basis": "preserved",  # median H_inv 0.66, median ρ of the two with one 0.75
        "global geometry": "isometric",  # median CKA 0.92
        "local geometry": "reorganised",  # median 0.5
        "linear readout": "transferred",  # median of the two pairs with a probe, (0.02 + 0.04) / 2
        "manifold status": "trajectory optimisation",
    }
    family = frame[(frame["scope"] == "family") & (frame["family"] == "RLVR")].set_index("metric")
    assert family.loc["h_inv_final", "value"] == pytest.approx(0.66)
    assert family.loc["h_inv_final", "n_pairs"] == 3
    assert family.loc["dimension_wise_correlation_diagonal_mean", "n_pairs"] == 2
    assert family.loc["probe_accuracy_drop_test", "value"] == pytest.approx(0.03)
    assert family.loc["probe_accuracy_drop_test", "model_pair"] == (
        "RLVR family, LLMs (median of 3 pairs)"
    )
    assert (family["pair"] == "").all()
    mean = verdicts.verdicts(h, pairs, "cot", p, "ag", thresholds={"family_aggregate": "mean"})
    means = mean[
        (mean["scope"] == "family")
        & (mean["family"] == "RLVR")
        & (mean["focus"] != "manifold status")
    ].set_index("metric")
    assert means.loc["linear_cka_diagonal_mean", "value"] == pytest.approx((0.95 + 0.92 + 0.5) / 3)
    assert family_focus(mean, "RLVR", "backbone")["global geometry"] == "distorted"  # 0.79
    assert family_focus(frame, "SFT", "backbone")["coordinate basis"] == "mixed"
    with pytest.raises(ConfigError, match=r"config key report\.verdicts\.family_aggregate: 'max'"):
        verdicts.thresholds_from_config({"family_aggregate": "max"})


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
    with pytest.raises(
        ConfigError, match=r"config key report\.verdicts: unknown key\(s\) \['cka_min'\]"
    ):
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
    # family rows first (SFT, then RLVR LLMs and embedding models), then one row per pair
    assert lines[2].startswith(
        "| **SFT family, LLMs (median of 1 pair)** | mixed (H_inv 0.10, ρ 0.10) | distorted"
    )
    assert lines[3].startswith("| **RLVR family, LLMs (median of 1 pair)** | preserved")
    assert lines[4].startswith("| → **RLVR family, embedding models (median of 1 pair)** |")
    assert lines[5].startswith(
        "| SFT: C vs D | mixed (H_inv 0.10, ρ 0.10) | distorted (CKA 0.60) |"
    )
    assert lines[6].startswith("| RLVR: A vs B | preserved")
    assert lines[7].startswith("| → A-Emb vs B-Emb | preserved")
    assert lines[7].endswith("| realigned |")
    assert "k=10 over transformer layers 1..L ≥ 0.7" in table.markdown
    assert "Family rows (bold) judge each number's median" in table.markdown
    assert list(table.frame.columns) == verdicts.VERDICT_COLUMNS
