"""hrsa.report.contrast: the RLVR family against the SFT family, with intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hrsa.report import collect, contrast

DECIDING = [
    "linear_cka_diagonal_mean",
    "h_inv_final",
    "knn_overlap_mean_transformer_layers",
]
ALL = [*DECIDING, "dimension_wise_correlation_diagonal_mean"]


def pairs(*spec):
    """``("rl1", "RLVR"), ("sft1", "SFT")`` -> PairInfo mapping."""
    return collect.pairs_from_config(
        {key: {"base": "b", "reasoning": key, "family": family} for key, family in spec}
    )


def numbers(pair, stage, values, half_width=0.01, skip=()):
    """Headline rows of one pair: ``values`` maps a quantity to its value (every quantity of
    :data:`ALL` gets ``values.get(q, default)``), each with an interval of ``half_width``
    (``None``: no interval); quantities in ``skip`` are absent (not computed)."""
    rows = []
    for quantity in ALL:
        if quantity in skip:
            continue
        value = values[quantity] if isinstance(values, dict) else values
        low, high = (
            (math.nan, math.nan) if half_width is None else (value - half_width, value + half_width)
        )
        k = 10 if quantity.startswith("knn") else None
        rows.append((pair, stage, "cot", quantity, k, value, low, high))
        if k:  # another k and the other layer mean: must be ignored
            rows.append((pair, stage, "cot", quantity, 5, 0.0, 0.0, 0.0))
            rows.append((pair, stage, "cot", "knn_overlap_mean", 10, 0.0, 0.0, 0.0))
    frame = pd.DataFrame(rows, columns=collect.HEADLINE_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")
    return frame


def frame_of(*parts):
    return pd.concat(parts, ignore_index=True)


def decided(frame, stage="backbone"):
    rows = frame[(frame["stage"] == stage) & frame["decides"]]
    return dict(
        zip(rows["metric"], zip(rows["closer"], rows["intervals"], strict=True), strict=True)
    )


def test_rlvr_closer_everywhere_with_separate_intervals_holds():
    heads = frame_of(numbers("rl", "backbone", 0.9), numbers("sft", "backbone", 0.5))
    out = contrast.rlvr_vs_sft(heads, pairs(("rl", "RLVR"), ("sft", "SFT")), "cot")
    assert list(out.columns) == contrast.CONTRAST_COLUMNS
    assert list(out["stage"]) == ["backbone"] * 4  # no emb results: that stage is left out
    assert set(decided(out).values()) == {("RLVR", "separate")}
    assert out.loc[out["decides"], "metric"].tolist() == [
        "linear_cka_diagonal_mean",
        "h_inv_final",
        "knn_overlap_mean_transformer_layers_k10",
    ]
    assert out["difference"].to_numpy() == pytest.approx(0.4)
    assert out["rlvr_ci_low"].to_numpy() == pytest.approx(0.89)
    sentence = contrast.finding(out, "backbone")
    assert sentence.startswith("**holds**") and "every interval separate" in sentence


def test_overlapping_intervals_and_a_reversed_number_are_said():
    rl = {"linear_cka_diagonal_mean": 0.80, "h_inv_final": 0.60}
    rl |= {
        "knn_overlap_mean_transformer_layers": 0.3,
        "dimension_wise_correlation_diagonal_mean": 0.9,
    }
    sft = {"linear_cka_diagonal_mean": 0.79, "h_inv_final": 0.40}
    sft |= {
        "knn_overlap_mean_transformer_layers": 0.5,
        "dimension_wise_correlation_diagonal_mean": 0.1,
    }
    heads = frame_of(
        numbers("rl", "backbone", rl, half_width=0.02), numbers("sft", "backbone", sft)
    )
    out = contrast.rlvr_vs_sft(heads, pairs(("rl", "RLVR"), ("sft", "SFT")), "cot")
    assert decided(out) == {
        "linear_cka_diagonal_mean": ("RLVR", "overlap"),
        "h_inv_final": ("RLVR", "separate"),
        "knn_overlap_mean_transformer_layers_k10": ("SFT", "separate"),
    }
    sentence = contrast.finding(out, "backbone")
    assert sentence.startswith("**holds in part**")
    assert "intervals overlap in CKA" in sentence and "SFT at least as close in k-NN@10" in sentence


def test_swapping_the_families_mirrors_the_comparison():
    rng = np.random.default_rng(0)
    values = {q: rng.uniform(0.2, 0.8) for q in ALL}
    other = {q: rng.uniform(0.2, 0.8) for q in ALL}
    heads = frame_of(numbers("x", "backbone", values), numbers("y", "backbone", other))
    one = contrast.rlvr_vs_sft(heads, pairs(("x", "RLVR"), ("y", "SFT")), "cot")
    two = contrast.rlvr_vs_sft(heads, pairs(("x", "SFT"), ("y", "RLVR")), "cot")
    assert one["difference"].to_numpy() == pytest.approx(-two["difference"].to_numpy())
    flip = {"RLVR": "SFT", "SFT": "RLVR"}
    assert [flip[c] for c in one["closer"]] == list(two["closer"])
    assert list(one["intervals"]) == list(two["intervals"])
    assert one["rlvr_value"].to_numpy() == pytest.approx(two["sft_value"].to_numpy())


def test_several_pairs_give_the_median_and_the_envelope_of_their_intervals():
    heads = frame_of(
        numbers("r1", "backbone", 0.70, half_width=0.01),
        numbers("r2", "backbone", 0.90, half_width=0.05),
        numbers("r3", "backbone", 0.80, half_width=0.02),
        numbers("s1", "backbone", 0.60, half_width=0.01),
        numbers("s2", "backbone", 0.40, half_width=0.01),
    )
    spec = [("r1", "RLVR"), ("r2", "RLVR"), ("r3", "RLVR"), ("s1", "SFT"), ("s2", "SFT")]
    out = contrast.rlvr_vs_sft(heads, pairs(*spec), "cot")
    row = out.iloc[0]
    assert (row["rlvr_pairs"], row["sft_pairs"]) == (3, 2)
    assert row["rlvr_value"] == pytest.approx(0.80) and row["sft_value"] == pytest.approx(0.50)
    assert (row["rlvr_ci_low"], row["rlvr_ci_high"]) == pytest.approx((0.69, 0.95))
    assert (row["sft_ci_low"], row["sft_ci_high"]) == pytest.approx((0.39, 0.61))
    assert row["intervals"] == "separate"  # 0.69 > 0.61: every RLVR interval above every SFT one
    mean = contrast.rlvr_vs_sft(heads, pairs(*spec), "cot", {"family_aggregate": "mean"})
    assert mean["rlvr_value"].iloc[0] == pytest.approx(np.mean([0.7, 0.9, 0.8]))


def test_a_number_not_computed_is_not_tested_and_no_interval_is_said():
    heads = frame_of(
        numbers("rl", "backbone", 0.9, half_width=None, skip=("h_inv_final",)),
        numbers("sft", "backbone", 0.5, half_width=None, skip=("h_inv_final",)),
    )
    out = contrast.rlvr_vs_sft(heads, pairs(("rl", "RLVR"), ("sft", "SFT")), "cot")
    h_inv = out[out["metric"] == "h_inv_final"].iloc[0]
    assert h_inv["closer"] == "" and h_inv["rlvr_pairs"] == 0 and math.isnan(h_inv["difference"])
    assert decided(out)["linear_cka_diagonal_mean"] == ("RLVR", "none")
    sentence = contrast.finding(out, "backbone")
    assert sentence.startswith("**holds**") and "not tested: H_inv" in sentence
    text = contrast.contrast_markdown(out)
    assert "| not tested |" in text and "0.900 (1)" in text


def test_a_stage_needs_both_families_and_one_family_alone_is_not_tested():
    heads = frame_of(
        numbers("rl", "backbone", 0.9),
        numbers("sft", "backbone", 0.5),
        numbers("rl", "emb", 0.3),  # no SFT pair at emb
    )
    out = contrast.rlvr_vs_sft(heads, pairs(("rl", "RLVR"), ("sft", "SFT")), "cot")
    assert set(out["stage"]) == {"backbone"}
    alone = contrast.rlvr_vs_sft(numbers("rl", "backbone", 0.9), pairs(("rl", "RLVR")), "cot")
    assert alone.empty
    assert "Not tested" in contrast.contrast_markdown(alone)


def test_the_deciding_knn_mean_and_k_follow_the_table2_thresholds():
    heads = frame_of(numbers("rl", "backbone", 0.9), numbers("sft", "backbone", 0.5))
    out = contrast.rlvr_vs_sft(
        heads, pairs(("rl", "RLVR"), ("sft", "SFT")), "cot", {"knn_layers": "all", "knn_k": 10}
    )
    knn = out[out["metric"] == "knn_overlap_mean_k10"].iloc[0]
    # the 0..L mean rows are 0.0 in both pairs: a tie, with overlapping intervals
    assert (knn["closer"], knn["intervals"]) == ("tie", "overlap")
    assert contrast.finding(out, "backbone").startswith("**holds in part**")
