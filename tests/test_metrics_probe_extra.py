"""Labelled extra metrics (hrsa.probe.extra_metrics): computed by the cross-model probe job on
its sentence embeddings and labels, written to probe_metrics.csv, drawn in the Table 8 figure."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from test_metrics_probe import _store_pair

from hrsa.activations import ActivationStore
from hrsa.errors import ConfigError
from hrsa.metrics import (
    behavioural_consistency,
    probe_and_metrics,
    probe_stores,
    sentence_embeddings,
    write_probe_metrics_csv,
)
from hrsa.metrics.registry import register
from hrsa.report import figures
from hrsa.report.collect import PairInfo, read_probe_metrics


def _embeddings(path):
    store = ActivationStore(path)
    last = store.layer(store.n_hidden_states - 1)
    return sentence_embeddings(last, store.sequence_index, len(store.sequences))


def test_behavioural_consistency_equals_the_direct_call_with_the_probes_protocol(tmp_path):
    a, b = _store_pair(tmp_path)
    rows, values = probe_and_metrics(
        a, b, seed=7, C=0.5, max_iter=500, extra_metrics=["behavioural_consistency"]
    )
    # the probe rows are exactly probe_stores' (same split, same classifier)
    assert rows == probe_stores(a, b, seed=7, C=0.5, max_iter=500)
    labels = np.asarray([s["label"] for s in ActivationStore(a).sequences])
    direct = behavioural_consistency(
        _embeddings(a), _embeddings(b), labels, seed=7, C=0.5, max_iter=500
    )
    assert values == {"behavioural_consistency": pytest.approx(direct, abs=0)}
    assert 0.5 < values["behavioural_consistency"] <= 1.0  # both stores carry the labels
    # another seed, another split: the protocol really reaches the metric
    other = behavioural_consistency(
        _embeddings(a), _embeddings(b), labels, seed=8, C=0.5, max_iter=500
    )
    _, values8 = probe_and_metrics(
        a, b, seed=8, C=0.5, max_iter=500, extra_metrics=["behavioural_consistency"]
    )
    assert values8["behavioural_consistency"] == pytest.approx(other, abs=0)
    path = write_probe_metrics_csv(values, tmp_path / "out" / "probe_metrics.csv")
    with open(path, newline="") as fh:
        assert list(csv.DictReader(fh)) == [
            {"metric": "behavioural_consistency", "value": str(values["behavioural_consistency"])}
        ]


def test_a_plug_in_labelled_metric_gets_only_the_arguments_it_takes(tmp_path, monkeypatch):
    from hrsa.metrics import registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))  # registered for this test
    seen = {}

    def agreement_of_means(X, Y, labels):
        """Toy labelled metric: same argmax class-mean norm in both models."""
        seen["n"] = len(labels)
        return 0.25

    register("toy_labelled", agreement_of_means, level="function", needs_labels=True)
    a, b = _store_pair(tmp_path)
    _, values = probe_and_metrics(a, b, extra_metrics=["toy_labelled"])
    assert values == {"toy_labelled": 0.25} and seen["n"] == 90


@pytest.mark.parametrize(
    "name, message",
    [("linear_cka", "needs no labels"), ("nope", "no registered metric 'nope'")],
)
def test_a_metric_that_is_not_labelled_is_a_config_error(tmp_path, name, message):
    a, b = _store_pair(tmp_path)
    with pytest.raises(ConfigError, match=rf"hrsa\.probe\.extra_metrics.*{message}"):
        probe_and_metrics(a, b, extra_metrics=[name])


def test_the_table8_figure_draws_a_labelled_metric_as_one_bar_per_pair(tmp_path):
    pairs = {
        "p1": PairInfo("p1", "a", "b", "RLVR", "GRPO", "RLVR pair", "A", "B"),
        "p2": PairInfo("p2", "a", "c", "SFT", "SFT", "SFT pair", "A", "C"),
    }
    for key, value in (("p1", 0.9), ("p2", 0.6)):
        for stage in ("backbone", "emb"):
            write_probe_metrics_csv(
                {"behavioural_consistency": value if stage == "backbone" else 0.1},
                tmp_path / "results/hrsa" / key / stage / "ag_news" / "probe_metrics.csv",
            )
    files = sorted(tmp_path.glob("results/hrsa/*/*/ag_news/probe_metrics.csv"))
    probe = read_probe_metrics(files)
    assert set(probe.columns) >= {"pair", "stage", "dataset", "metric", "value"}
    empty = pd.DataFrame(
        columns=["pair", "stage", "dataset", "metric", "layer_base", "layer_reason", "k", "value"]
    )
    data = figures.extra_metrics_data(
        empty,
        pairs,
        [],
        "cot",
        probe_metrics=probe,
        labelled=["behavioural_consistency"],
        probe_dataset="ag_news",
    )
    # pairs in the report's order (SFT pairs first), one row each, the backbone's values
    assert data[["pair", "value", "dataset"]].values.tolist() == [
        ["p2", 0.6, "ag_news"],
        ["p1", 0.9, "ag_news"],
    ]
    assert data["layer"].isna().all()
    fig = figures.extra_metrics_figure(
        data, pairs, ["behavioural_consistency"], {"behavioural_consistency": "function"}, "cot"
    )
    ax = fig.axes[0]
    assert [round(p.get_height(), 3) for p in ax.patches] == [0.6, 0.9]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SFT pair", "RLVR pair"]
    assert "probe" in ax.get_title() and "function level" in ax.get_title()
