"""Metrics as plug-ins: a metric registered from outside the package (a .py file or a module
named in ``hrsa.plugins``) and selected by ``hrsa.extra_metrics`` is computed per hidden state
on the shared subsample and reaches ``metrics.csv``, ``summary.json`` and the report's Table 8
figure, with no edit under ``src/hrsa``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrsa.activations import ActivationStore, write_store
from hrsa.errors import ConfigError
from hrsa.metrics import HRSASettings, compare_stores, registry
from hrsa.report import collect, figures

#: the plug-in of this page and of the end-to-end workflow test, outside the package
TOY = (Path(__file__).parent / "plugins" / "toy_metric.py").read_text()


@pytest.fixture
def private_registry(monkeypatch):
    """Registrations made by a test end with it."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    yield registry
    for name in [m for m in sys.modules if m.startswith("hrsa_plugin_")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugin-stores")
    rng = np.random.default_rng(0)
    lens = rng.integers(5, 15, 20)
    n, d = int(lens.sum()), 6
    seq = np.repeat(np.arange(20), lens)
    pos = np.concatenate([np.arange(m) for m in lens])
    tok = rng.integers(0, 50, n)
    base = [rng.standard_normal((n, d)) * (1 + i) for i in range(4)]
    reason = [b @ np.linalg.qr(rng.standard_normal((d, d)))[0] + 3.0 for b in base]
    sequences = [{"id": f"s{j}", "label": j % 2} for j in range(20)]
    a = write_store(tmp / "base", base, tok, seq, pos, sequences)
    b = write_store(tmp / "reason", reason, tok, seq, pos, sequences)
    return ActivationStore(a), ActivationStore(b)


def test_plugin_file_metric_reaches_every_output(private_registry, stores, tmp_path):
    plugin = tmp_path / "my_metrics.py"
    plugin.write_text(TOY)
    assert private_registry.load_plugins([plugin.name], basedir=tmp_path) == [
        "hrsa_plugin_my_metrics"
    ]
    spec = private_registry.get_metric("spread_ratio")
    assert spec.level == "representation"
    a, b = stores
    settings = HRSASettings(
        knn_k=[3], knn_max_tokens=60, bootstrap=3, permutations=2, extra_metrics=["spread_ratio"]
    )
    res = compare_stores(a, b, settings)
    metrics, summary = res.write(tmp_path / "metrics.csv", tmp_path / "summary.json", pair="p")
    # the value is the plug-in's own function on each hidden state's subsample rows
    rows = res.subsample.rows
    expected = [
        spec.function(
            np.asarray(a.layer(i)[rows], np.float32), np.asarray(b.layer(i)[rows], np.float32)
        )
        for i in range(4)
    ]
    np.testing.assert_allclose(res.subsample.extra["spread_ratio"], expected, rtol=1e-12)
    # a rotation plus a shift per layer: the spread ratio is 1 (up to fp16 storage)
    np.testing.assert_allclose(expected, 1.0, atol=2e-3)
    table = pd.read_csv(metrics)
    mine = table[table["metric"] == "spread_ratio"].sort_values("layer_base")
    assert list(mine["layer_base"]) == list(mine["layer_reason"]) == [0, 1, 2, 3]
    np.testing.assert_allclose(mine["value"], expected, rtol=1e-12)
    entry = json.loads(summary.read_text())["extra_metrics"]["spread_ratio"]
    assert entry["level"] == "representation"
    assert entry["description"].startswith("||Xc||_F / ||Yc||_F")
    assert entry["final"] == pytest.approx(expected[-1], rel=1e-12)
    assert entry["mean_transformer_layers"] == pytest.approx(np.mean(expected[1:]), rel=1e-12)
    # without extra metrics nothing changes in the paper's outputs
    plain = compare_stores(
        a, b, HRSASettings(knn_k=[3], knn_max_tokens=60, bootstrap=3, permutations=2)
    )
    assert plain.summary()["headline"] == res.summary()["headline"]
    assert plain.summary()["extra_metrics"] == {}
    # the report's figure draws it
    frame = collect.read_metrics([metrics])
    frame["pair"], frame["stage"], frame["dataset"] = "p", "backbone", "d"
    pairs = {"p": collect.PairInfo("p", "b", "r", "RLVR", "GRPO", "p label", "base", "reasoning")}
    data = figures.extra_metrics_data(frame, pairs, ["spread_ratio"], "d")
    assert list(data["layer"]) == [0, 1, 2, 3]
    np.testing.assert_allclose(data["value"], expected, rtol=1e-12)
    fig = figures.extra_metrics_figure(
        data, pairs, ["spread_ratio"], {"spread_ratio": "representation"}, "d"
    )
    ax = fig.axes[0]
    assert "spread ratio" in ax.get_title() and len(ax.lines) == 1
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected, rtol=1e-12)


def test_plugin_module_by_name(private_registry, tmp_path, monkeypatch):
    (tmp_path / "lab_metrics.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert private_registry.load_plugins(["lab_metrics"]) == ["lab_metrics"]
    assert "spread_ratio" in private_registry.REGISTRY
    del sys.modules["lab_metrics"]


def test_bad_plugins_and_names_name_the_key(private_registry, stores, tmp_path):
    with pytest.raises(ConfigError, match=r"hrsa\.plugins\[0\].*does not exist"):
        private_registry.load_plugins(["nope.py"], basedir=tmp_path)
    with pytest.raises(ConfigError, match=r"hrsa\.plugins\[1\].*no_such_module"):
        private_registry.load_plugins(["numpy", "no_such_module"])
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match=r"hrsa\.plugins\[0\].*boom"):
        private_registry.load_plugins([str(broken)])
    a, b = stores
    with pytest.raises(ConfigError, match=r"hrsa\.extra_metrics.*no registered metric 'nope'"):
        compare_stores(a, b, HRSASettings(knn_k=[3], knn_max_tokens=60, extra_metrics=["nope"]))
    labelled = [m.name for m in registry.metrics() if m.needs_labels]
    if labelled:
        with pytest.raises(ConfigError, match="needs labels"):
            registry.subsample_metric(labelled[0])
