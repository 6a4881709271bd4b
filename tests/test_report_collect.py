"""hrsa.report.collect: result files -> tidy frames, and pair names for display."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from hrsa.errors import ConfigError, DataError
from hrsa.report import collect

CONFIG = {
    "models": {
        "qwen": {"label": "Qwen2.5-Math-1.5B"},
        "ds": {"label": "DeepSeek-R1-Distill-Qwen-1.5B"},
        "prorl": {"label": "Nemotron-1.5B"},
    },
    "pairs": {
        "rl": {"base": "ds", "reasoning": "prorl", "family": "rlvr", "label": "DS vs ProRL"},
        "sft": {"base": "qwen", "reasoning": "ds", "family": "SFT", "algorithm": "SFT"},
    },
}


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


METRICS = """metric,layer_base,layer_reason,k,value,ci_low,ci_high
linear_cka,0,0,,0.9,0.88,0.92
linear_cka,0,1,,0.5,,
linear_cka,1,0,,0.4,,
linear_cka,1,1,,0.8,,
knn_overlap,0,0,5,0.3,0.25,0.35
knn_overlap,1,1,5,0.2,,
knn_overlap,0,0,10,0.35,,
knn_overlap,1,1,10,0.25,,
"""

SUMMARY = {
    "pair": "rl",
    "stage": "emb",
    "dataset": "cot",
    "n_tokens": 10,
    "headline": {
        "linear_cka_diagonal_mean": {"value": 0.85, "ci_low": 0.8, "ci_high": 0.9},
        "h_inv_final": {"value": 0.7, "ci_low": None, "ci_high": None},
        "dimension_wise_correlation_final": 0.6,
        "knn_overlap_mean": {
            "5": {"value": 0.25},
            "10": {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4},
        },
    },
}

PROBE = """direction,split,evaluated_on,accuracy,macro_f1,weighted_f1
base_to_reasoning,test,base,0.9,0.89,0.9
base_to_reasoning,test,reasoning,0.7,0.69,0.7
base_to_reasoning,train,base,0.95,0.94,0.95
base_to_reasoning,train,reasoning,0.8,0.79,0.8
reasoning_to_base,train,base,0.5,0.5,0.5
"""


def test_read_metrics_adds_keys_from_path_and_types_columns(tmp_path):
    path = write(tmp_path / "results/hrsa/rl/backbone/cot/metrics.csv", METRICS)
    frame = collect.read_metrics([path])
    assert list(frame.columns) == collect.KEYS + collect.METRICS_COLUMNS
    assert set(frame["pair"]) == {"rl"} and set(frame["stage"]) == {"backbone"}
    assert set(frame["dataset"]) == {"cot"}
    assert str(frame["k"].dtype) == "Int64" and frame["k"].isna().sum() == 4
    assert frame.loc[0, "ci_low"] == 0.88 and math.isnan(frame.loc[1, "ci_low"])


def test_read_metrics_without_interval_columns(tmp_path):
    path = write(
        tmp_path / "p/emb/d/metrics.csv", "metric,layer_base,layer_reason,value\nlinear_cka,0,0,1\n"
    )
    frame = collect.read_metrics([path])
    assert frame["ci_low"].isna().all() and frame["k"].isna().all()


def test_read_metrics_names_file_with_missing_column(tmp_path):
    path = write(tmp_path / "p/emb/d/metrics.csv", "metric,value\nlinear_cka,1\n")
    with pytest.raises(DataError, match="metrics.csv.*layer_base"):
        collect.read_metrics([path])


def test_layer_matrix_rows_are_base_layers(tmp_path):
    frame = collect.read_metrics([write(tmp_path / "rl/backbone/cot/metrics.csv", METRICS)])
    matrix = collect.layer_matrix(frame, "linear_cka", "rl", "backbone", "cot")
    np.testing.assert_allclose(matrix, [[0.9, 0.5], [0.4, 0.8]])
    assert collect.layer_matrix(frame, "linear_cka", "rl", "emb", "cot").shape == (0, 0)


def test_diagonal_curve_selects_one_k(tmp_path):
    frame = collect.read_metrics([write(tmp_path / "rl/backbone/cot/metrics.csv", METRICS)])
    curve = collect.diagonal_curve(frame, "knn_overlap", "rl", "backbone", "cot", k=10)
    assert curve["layer"].tolist() == [0, 1]
    assert curve["value"].tolist() == [0.35, 0.25]


def test_read_headlines_flattens_nested_k_and_missing_intervals(tmp_path):
    path = write(tmp_path / "rl/emb/cot/summary.json", json.dumps(SUMMARY))
    frame = collect.read_headlines([path])
    assert list(frame.columns) == collect.HEADLINE_COLUMNS
    assert set(frame["pair"]) == {"rl"} and set(frame["stage"]) == {"emb"}
    assert collect.headline(frame, "rl", "emb", "cot", "linear_cka_diagonal_mean") == (
        0.85,
        0.8,
        0.9,
    )
    value, low, high = collect.headline(frame, "rl", "emb", "cot", "h_inv_final")
    assert value == 0.7 and math.isnan(low) and math.isnan(high)
    assert collect.headline(frame, "rl", "emb", "cot", "dimension_wise_correlation_final")[0] == 0.6
    assert collect.headline(frame, "rl", "emb", "cot", "knn_overlap_mean", 10) == (0.3, 0.2, 0.4)
    assert collect.headline(frame, "rl", "emb", "cot", "knn_overlap_mean", 5)[0] == 0.25
    assert math.isnan(collect.headline(frame, "rl", "emb", "cot", "knn_overlap_mean", 50)[0])


def test_read_headlines_fills_keys_from_path(tmp_path):
    summary = {"pair": "", "headline": {"h_inv_final": {"value": 0.5}}}
    path = write(tmp_path / "results/hrsa/p/step200/cot/summary.json", json.dumps(summary))
    frame = collect.read_headlines([path])
    assert frame.loc[0, ["pair", "stage", "dataset"]].tolist() == ["p", "step200", "cot"]


def test_read_summary_rejects_file_under_another_pair(tmp_path):
    path = write(tmp_path / "other/emb/cot/summary.json", json.dumps(SUMMARY))
    with pytest.raises(DataError, match="other/emb/cot/summary.json.*pair 'rl'"):
        collect.read_headlines([path])


def test_read_summary_rejects_file_without_headline(tmp_path):
    path = write(tmp_path / "p/s/d/summary.json", "{}")
    with pytest.raises(DataError, match="headline"):
        collect.read_headlines([path])


def test_probe_accuracy_orders_splits_and_uses_one_direction(tmp_path):
    path = write(tmp_path / "results/hrsa/rl/emb/ag_news/probe.csv", PROBE)
    probes = collect.read_probes([path])
    assert set(probes["dataset"]) == {"ag_news"}
    table = collect.probe_accuracy(probes, "rl", "emb", "ag_news")
    assert table.index.tolist() == ["train", "test"]
    assert table.columns.tolist() == ["base", "reasoning"]
    assert table.loc["train", "reasoning"] == 0.8  # not reasoning_to_base's 0.5
    assert table.loc["test", "base"] == 0.9


def test_pairs_from_config_names_and_order():
    pairs = collect.pairs_from_config(CONFIG["pairs"], CONFIG["models"])
    rl, sft = pairs["rl"], pairs["sft"]
    assert rl.family == "RLVR" and rl.algorithm == "RLVR" and not rl.is_sft
    assert sft.is_sft and sft.label == "Qwen2.5-Math-1.5B vs DeepSeek-R1-Distill-Qwen-1.5B"
    assert rl.short_name("backbone") == "DS vs ProRL"
    assert rl.short_name("emb") == "DS-Emb vs ProRL-Emb"
    assert rl.long_name("emb") == "DeepSeek-R1-Distill-Qwen-1.5B-Emb vs Nemotron-1.5B-Emb"
    assert [p.key for p in collect.ordered(pairs)] == ["sft", "rl"]


def test_pairs_from_config_requires_family():
    with pytest.raises(ConfigError, match=r"config key pairs\.p\.family: missing"):
        collect.pairs_from_config({"p": {"base": "a", "reasoning": "b"}})


def test_stage_step():
    assert collect.stage_step("step200") == 200
    assert collect.stage_step("backbone") == 0
    assert collect.stage_step("emb") is None


def test_select_matches_missing_with_none():
    frame = pd.DataFrame({"a": [1, 2], "k": pd.array([None, 5], dtype="Int64")})
    assert collect.select(frame, k=None)["a"].tolist() == [1]
