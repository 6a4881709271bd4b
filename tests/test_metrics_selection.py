"""``hrsa.metrics``: which of the paper's metrics run, per level.

A metric left out is not computed (the k-NN search, the Procrustes SVDs and the probe jobs are
skipped), has no rows in ``metrics.csv`` and no headline in ``summary.json``, and the metrics
that stay are bit-identical to a run with every metric; the plan builds no report output that
needs it and lists why."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hrsa.activations import ActivationStore, write_store
from hrsa.config import PAPER_METRICS, validate_config
from hrsa.errors import ConfigError
from hrsa.metrics import HRSASettings, compare_stores
from hrsa.metrics import layerwise as layerwise_module
from hrsa.plan import Plan
from hrsa.report import collect, figures

FULL = {"knn_k": [3, 5], "knn_max_tokens": 80, "bootstrap": 4, "permutations": 3}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("selection-stores")
    rng = np.random.default_rng(3)
    lens = rng.integers(5, 12, 16)
    n, d = int(lens.sum()), 6
    seq = np.repeat(np.arange(16), lens)
    pos = np.concatenate([np.arange(m) for m in lens])
    tok = rng.integers(0, 50, n)
    base = [rng.standard_normal((n, d)) * (1 + i) for i in range(3)]
    reason = [b + 0.5 * rng.standard_normal((n, d)) for b in base]
    sequences = [{"id": f"s{j}"} for j in range(16)]
    a = write_store(tmp / "base", base, tok, seq, pos, sequences)
    b = write_store(tmp / "reason", reason, tok, seq, pos, sequences)
    return ActivationStore(a), ActivationStore(b)


@pytest.fixture(scope="module")
def full(stores, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    res = compare_stores(*stores, HRSASettings(**FULL))
    m, s = res.write(tmp / "metrics.csv", tmp / "summary.json")
    return pd.read_csv(m), json.loads(s.read_text())


def _run(stores, tmp_path, selection):
    res = compare_stores(*stores, HRSASettings(**FULL, metrics=selection))
    m, s = res.write(tmp_path / "metrics.csv", tmp_path / "summary.json")
    return pd.read_csv(m), json.loads(s.read_text())


def _same_rows(part: pd.DataFrame, whole: pd.DataFrame, metrics) -> None:
    keys = ["metric", "layer_base", "layer_reason", "k"]
    a = part[part["metric"].isin(metrics)].sort_values(keys).reset_index(drop=True)
    b = whole[whole["metric"].isin(metrics)].sort_values(keys).reset_index(drop=True)
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=True)  # with intervals


def test_every_metric_is_the_default_selection(full):
    table, summary = full
    assert set(table["metric"]) >= {
        "dimension_wise_correlation",
        "linear_cka",
        "debiased_cka",
        "procrustes_h_inv",
        "procrustes_residual",
        "knn_overlap",
        "knn_overlap_null",
        "linear_cka_null",
    }
    assert summary["metrics_not_computed"] == []
    assert summary["settings"]["metrics"] == {k: list(v) for k, v in PAPER_METRICS.items()}


def test_without_knn_the_search_is_skipped_and_the_rest_is_identical(
    stores, full, tmp_path, monkeypatch
):
    def no_search(*a, **k):
        raise AssertionError("k-NN search ran although knn_overlap is left out")

    monkeypatch.setattr(layerwise_module, "_neighbours_tensor", no_search)
    table, summary = _run(stores, tmp_path, {"geometry": ["linear_cka"]})
    assert not table["metric"].str.startswith("knn").any()
    kept = ["dimension_wise_correlation", "linear_cka", "debiased_cka", "linear_cka_null"]
    _same_rows(table, full[0], kept + ["procrustes_h_inv", "procrustes_residual"])
    assert summary["metrics_not_computed"] == ["knn_overlap"]
    assert not any(k.startswith("knn") for k in summary["headline"])
    assert not any(k.startswith("knn") for k in summary["null"])
    assert summary["knn_overlap_layers"] == {}
    assert summary["headline"]["linear_cka_final"] == full[1]["headline"]["linear_cka_final"]
    assert summary["headline"]["h_inv_final"] == full[1]["headline"]["h_inv_final"]


def test_without_procrustes_no_polar_factor_is_computed(stores, full, tmp_path, monkeypatch):
    def no_procrustes(*a, **k):
        raise AssertionError("Procrustes ran although it is left out")

    monkeypatch.setattr(layerwise_module, "procrustes_from_cross", no_procrustes)
    table, summary = _run(stores, tmp_path, {"representation": ["dimension_wise_correlation"]})
    assert not table["metric"].str.startswith("procrustes").any()
    _same_rows(table, full[0], ["dimension_wise_correlation", "linear_cka", "knn_overlap"])
    assert "h_inv_final" not in summary["headline"]
    assert "h_inv_final" not in summary["bootstrap_bias"]
    assert summary["metrics_not_computed"] == ["procrustes"]


def test_without_cka_its_null_goes_and_the_knn_null_stays(stores, full, tmp_path, monkeypatch):
    def no_cka(*a, **k):
        raise AssertionError("CKA ran although linear_cka is left out")

    monkeypatch.setattr(layerwise_module, "cka_from_terms", no_cka)
    monkeypatch.setattr(layerwise_module, "debiased_cka_from_terms", no_cka)
    table, summary = _run(stores, tmp_path, {"geometry": ["knn_overlap"], "representation": []})
    assert set(table["metric"]) == {"knn_overlap", "knn_overlap_null"}
    _same_rows(table, full[0], ["knn_overlap", "knn_overlap_null"])
    assert set(summary["headline"]) == {"knn_overlap_mean", "knn_overlap_mean_transformer_layers"}
    assert set(summary["null"]) == {"knn_overlap_mean", "knn_overlap_mean_transformer_layers"}
    assert summary["metrics_not_computed"] == [
        "dimension_wise_correlation",
        "procrustes",
        "linear_cka",
    ]


@pytest.mark.parametrize(
    ("selection", "key", "says"),
    [
        ({"geometry": ["rbf_cka"]}, "hrsa.metrics.geometry[0]", "hrsa.extra_metrics"),
        ({"function": ["linear_cka"]}, "hrsa.metrics.function[0]", "under hrsa.metrics.geometry"),
        ({"geometric": ["linear_cka"]}, "hrsa.metrics", "unknown levels ['geometric']"),
        ({"geometry": "linear_cka"}, "hrsa.metrics.geometry", "a list of metric names"),
    ],
)
def test_a_wrong_selection_names_the_entry(selection, key, says):
    with pytest.raises(ConfigError) as err:
        HRSASettings(metrics=selection)
    assert str(err.value).startswith(f"config key {key}:") and says in str(err.value)


# ------------------------------------------------------------------ the plan and the report
@pytest.fixture(scope="module")
def default_config():
    text = (Path(__file__).parents[1] / "config" / "config.yaml").read_text()
    return validate_config(yaml.safe_load(text))


def _plan(config, **levels) -> Plan:
    cfg = copy.deepcopy(config)
    cfg["hrsa"]["metrics"].update(levels)
    if levels.get("function") == []:
        cfg["hrsa"]["probe"]["extra_metrics"] = []
    return Plan(cfg, exists=lambda p: False)


def test_the_plan_builds_no_output_of_a_metric_left_out(default_config):
    full = Plan(default_config, exists=lambda p: False)
    assert any(t.endswith("/probe.csv") for t in full.all_targets())
    plan = _plan(
        default_config,
        function=[],
        geometry=["linear_cka"],
        representation=["dimension_wise_correlation"],
    )
    targets = plan.all_targets()
    assert not any(t.endswith(("/probe.csv", "/probe_metrics.csv")) for t in targets)
    names = {t.rsplit("/", 1)[-1] for t in targets if "/report/" in t}
    for gone in ("table3.csv", "table4.csv", "table12.csv", "table13.csv", "figure4.png"):
        assert gone not in names
    for gone in ("figure10.png", "figure11.png", "figure12.png", "figure13.png"):
        assert gone not in names
    for kept in ("table2.csv", "figure3.png", "figure6.png", "figure8.png", "figure9.png"):
        assert kept in names
    skipped = plan.report_skipped()
    assert "hrsa.metrics.function leaves out cross_model_probe" in " ".join(skipped.values())
    assert skipped["Table 4, Figures 10, 11; Table 2's local geometry"] == (
        "hrsa.metrics leaves out knn_overlap (not computed)."
    )
    assert "Tables 3, 12, 13 (H_inv); Table 2's coordinate basis" in skipped
    assert plan.metrics_left_out() == ["procrustes", "knn_overlap", "cross_model_probe"]
    # the HRSA job gets the selection (a changed selection reruns it)
    assert plan.hrsa_settings()["metrics"]["geometry"] == ["linear_cka"]


def test_figures_3_5_and_the_pair_pages_go_only_with_all_their_metrics(default_config):
    plan = _plan(default_config, representation=[], geometry=["knn_overlap"])
    names = [t for t in plan.report_figures() if t.endswith(".png")]
    assert not any(n.endswith("/figure3.png") for n in names)
    assert any("/pairs/" in n for n in names)  # k-NN curves are still drawn
    plan = _plan(default_config, representation=[], geometry=[])
    names = [t for t in plan.report_figures() if t.endswith(".png")]
    assert not any("/pairs/" in n or "/figure5/" in n for n in names)
    assert "pairs/<pair> figures" in plan.report_skipped()


def test_probe_extra_metrics_need_the_probe(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["hrsa"]["metrics"]["function"] = []
    with pytest.raises(ConfigError, match=r"^config key hrsa.probe.extra_metrics: .*leaves out"):
        validate_config(cfg)
    cfg["hrsa"]["probe"]["extra_metrics"] = []
    validate_config(cfg)


def test_the_report_draws_what_is_left(stores, tmp_path):
    """Figure 3 and a pair page from metrics.csv files without k-NN or CKA rows."""
    res = compare_stores(*stores, HRSASettings(**FULL, metrics={"geometry": []}))
    path = tmp_path / "results/hrsa/p/backbone/d/metrics.csv"
    path.parent.mkdir(parents=True)
    res.write(path, path.with_name("summary.json"))
    metrics = collect.read_metrics([path])
    assert set(metrics["metric"]) == {
        "dimension_wise_correlation",
        "procrustes_h_inv",
        "procrustes_residual",
    }
    pairs = {"p": collect.PairInfo("p", "base", "reason", "RLVR", "GRPO", "P", "Base", "Reason")}
    fig = figures.figure3(metrics, pairs, ["p"], "d", stages=("backbone",))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no data" in texts  # the CKA panel; the correlation heatmap is drawn
    assert any(ax.images for ax in fig.axes)
    fig = figures.pair_overview(metrics, pairs["p"], ["backbone"], ["d"])
    assert sum("no data" == t.get_text() for ax in fig.axes for t in ax.texts) == 2
