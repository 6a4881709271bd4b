"""The ridge probe: the cross-model probe of a numeric target (paper 3.4.1, "logistic or ridge
regression, depending on the task"; protocol and probe.csv: docs/contracts.md, contract 2)."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from hrsa.activations import write_store
from hrsa.config import schema_default
from hrsa.errors import ConfigError, DataError
from hrsa.metrics.function import (
    CLASS_COLUMNS,
    DIRECTIONS,
    PROBE_BINS,
    REGRESSION_COLUMNS,
    SPLITS,
    ProbeScore,
    cross_model_probe,
    probe_stores,
    quantile_bins,
    stratified_split,
    write_probe_csv,
)
from hrsa.metrics.output import atomic_write_csv
from hrsa.report import collect

N, D = 300, 10


def embeddings(n=N, d=D, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def linear_target(X, seed=1):
    """An exact linear function of the (L2-normalised) sentence embeddings the probe sees."""
    w = np.random.default_rng(seed).standard_normal(X.shape[1])
    return unit(X) @ w + 0.5


def keyed(rows):
    return {(r.direction, r.split, r.evaluated_on): r for r in rows}


def rotation(d=D, seed=7):
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))[0]


# ----------------------------------------------------------------------------- the split


def test_quantile_bins_are_equal_count_rank_bins():
    values = np.random.default_rng(3).standard_normal(103)
    bins = quantile_bins(values, 5)
    assert sorted(np.bincount(bins)) == [20, 20, 21, 21, 21]
    order = np.argsort(values)
    assert np.all(np.diff(bins[order]) >= 0)  # bins follow the values
    ties = quantile_bins(np.zeros(10), 5)  # ties still fill every bin equally
    assert np.bincount(ties).tolist() == [2] * 5


def test_numeric_split_is_seeded_and_balanced_across_target_quantiles():
    y = np.random.default_rng(4).exponential(size=250)  # skewed: bins are by rank, not value
    train, dev, test = stratified_split(y, seed=42, bins=PROBE_BINS)
    assert np.array_equal(np.sort(np.concatenate([train, dev, test])), np.arange(250))
    assert len(np.intersect1d(train, dev)) == len(np.intersect1d(dev, test)) == 0
    strata = quantile_bins(y, PROBE_BINS)
    for b in range(PROBE_BINS):  # 50 per bin: 5 to dev, 5 to test
        assert (strata[dev] == b).sum() == 5 and (strata[test] == b).sum() == 5
    again = stratified_split(y, seed=42, bins=PROBE_BINS)
    assert all(np.array_equal(a, b) for a, b in zip((train, dev, test), again, strict=True))
    assert not np.array_equal(stratified_split(y, seed=1, bins=PROBE_BINS)[2], test)
    # the probe uses exactly that split
    X = embeddings(250)
    rows = cross_model_probe(X, X, y, task="numeric", seed=42)
    assert len(rows) == 12
    with pytest.raises(DataError, match="empty"):
        stratified_split(np.arange(20.0), seed=0, bins=PROBE_BINS)  # 4 per bin: no dev rows


# ----------------------------------------------------------------------------- known answers


def test_a_linear_target_on_identical_models_gives_r2_one_and_no_drop():
    X = embeddings()
    y = linear_target(X)
    rows = cross_model_probe(X, X.copy(), y, task="numeric", seed=42)
    assert {(r.direction, r.split, r.evaluated_on) for r in rows} == {
        (d, s, e) for d in DIRECTIONS for s in SPLITS for e in ("base", "reasoning")
    }
    for r in rows:
        assert r.task == "numeric"
        assert r.accuracy is r.macro_f1 is r.weighted_f1 is None
        assert r.r2 > 0.99, r  # alpha 1 on standardised features barely shrinks
        assert abs(r.r2_drop) < 1e-12
    # a smaller penalty recovers the linear map almost exactly
    tight = cross_model_probe(X, X, y, task="numeric", alpha=1e-8)
    assert min(r.r2 for r in tight) > 1 - 1e-9


def test_a_target_independent_of_the_embeddings_has_no_r2_on_test():
    n = 2000  # 200 test rows: chance R^2 stays within a few hundredths of 0
    X = embeddings(n)
    y = np.random.default_rng(99).standard_normal(n)
    rows = cross_model_probe(X, embeddings(n, seed=5), y, task="numeric", seed=42)
    test = [r.r2 for r in rows if r.split == "test"]
    assert max(test) < 0.03 and np.mean(test) < 0.01, test
    score = keyed(rows)
    assert 0 < score["base_to_reasoning", "train", "base"].r2 < 0.05  # fits only noise


def test_a_rotated_model_loses_the_probe():
    """The probe's weights and the reused scaler are tied to the source model's coordinates."""
    X = embeddings()
    y = linear_target(X)
    score = keyed(cross_model_probe(X, X @ rotation(), y, task="numeric", seed=42))
    for direction, source, other in (
        ("base_to_reasoning", "base", "reasoning"),
        ("reasoning_to_base", "reasoning", "base"),
    ):
        for split in SPLITS:
            own, moved = score[direction, split, source], score[direction, split, other]
            assert own.r2 > 0.99  # y is linear in the rotated coordinates too
            assert own.r2_drop == 0.0
            assert moved.r2_drop == pytest.approx(own.r2 - moved.r2)
            assert moved.r2_drop > 0.5, (direction, split, moved)
    # an isotropic rescaling is invisible (embeddings are L2-normalised first)
    scaled = keyed(cross_model_probe(X, 3.0 * X, y, task="numeric", seed=42))
    assert abs(scaled["base_to_reasoning", "test", "reasoning"].r2_drop) < 1e-9


def test_numeric_target_errors():
    X = embeddings(100)
    with pytest.raises(DataError, match="two distinct values"):
        cross_model_probe(X, X, np.ones(100), task="numeric")
    y = np.arange(100.0)
    y[3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        cross_model_probe(X, X, y, task="numeric")
    with pytest.raises(DataError, match="numbers"):
        cross_model_probe(X, X, ["a"] * 100, task="numeric")
    with pytest.raises(ConfigError, match="alpha"):
        cross_model_probe(X, X, np.arange(100.0), task="numeric", alpha=0.0)
    with pytest.raises(ConfigError, match="task"):
        cross_model_probe(X, X, np.arange(100) % 2, task="regression")


def test_alpha_default_is_the_schemas():
    import inspect

    want = schema_default("hrsa.probe.alpha")
    for func in (cross_model_probe, probe_stores):
        got = inspect.signature(func).parameters["alpha"].default
        assert got == want and type(got) is type(want)


# ----------------------------------------------------------------------------- class targets


def _reference_logistic_probe(base, reasoning, labels, *, seed=42, C=1.0, max_iter=1000):
    """The classification probe as it was before the ridge probe (kept here verbatim in
    substance) - the class path must give exactly these numbers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    emb = {"base": unit(np.asarray(base, float)), "reasoning": unit(np.asarray(reasoning, float))}
    y = np.asarray(labels)
    split = dict(zip(SPLITS, stratified_split(y, seed=seed), strict=True))
    rows = []
    for direction in DIRECTIONS:
        source = "base" if direction == "base_to_reasoning" else "reasoning"
        scaler = StandardScaler().fit(emb[source][split["train"]])
        probe = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe.fit(scaler.transform(emb[source][split["train"]]), y[split["train"]])
        for name in SPLITS:
            for target in ("base", "reasoning"):
                idx = split[name]
                pred = probe.predict(scaler.transform(emb[target][idx]))
                rows.append(
                    (
                        direction,
                        name,
                        target,
                        float(accuracy_score(y[idx], pred)),
                        float(f1_score(y[idx], pred, average="macro", zero_division=0)),
                        float(f1_score(y[idx], pred, average="weighted", zero_division=0)),
                    )
                )
    return rows


def test_class_targets_are_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(N) % 3
    X = 3.0 * rng.standard_normal((3, D))[labels] + rng.standard_normal((N, D))
    Y = X @ rotation() + 0.3 * rng.standard_normal((N, D))
    rows = cross_model_probe(X, Y, labels, seed=42)
    # alpha and the task default do not touch the logistic probe
    assert rows == cross_model_probe(X, Y, labels, seed=42, task="class", alpha=123.0)
    ref = _reference_logistic_probe(X, Y, labels)
    assert [(r.direction, r.split, r.evaluated_on, r.accuracy, r.macro_f1, r.weighted_f1)
            for r in rows] == ref  # fmt: skip
    assert all(r.task == "class" and r.r2 is None and r.r2_drop is None for r in rows)
    # probe.csv: byte for byte what the six-column writer wrote before the ridge probe
    path = write_probe_csv(rows, tmp_path / "new" / "probe.csv")
    old = atomic_write_csv(
        tmp_path / "old" / "probe.csv",
        list(CLASS_COLUMNS),
        [dict(zip(CLASS_COLUMNS, r, strict=True)) for r in ref],
    )
    assert path.read_bytes() == old.read_bytes()
    assert path.read_text().splitlines()[0] == ",".join(CLASS_COLUMNS)


# ----------------------------------------------------------------------------- probe.csv


def test_numeric_probe_csv_appends_r2_columns_and_the_report_reads_both(tmp_path):
    X = embeddings()
    rows = cross_model_probe(X, X @ rotation(), linear_target(X), task="numeric", seed=42)
    out = tmp_path / "results/hrsa/rl/emb/quality"
    path = write_probe_csv(rows, out / "probe.csv")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CLASS_COLUMNS + REGRESSION_COLUMNS
        records = list(reader)
    assert len(records) == 12
    assert all(r["accuracy"] == r["macro_f1"] == r["weighted_f1"] == "" for r in records)
    assert all(r["task"] == "numeric" for r in records)
    first = records[0]
    assert float(first["r2"]) == pytest.approx(rows[0].r2)

    classes = [
        ProbeScore("base_to_reasoning", "test", e, 0.9, 0.8, 0.85) for e in ("base", "reasoning")
    ]
    class_path = write_probe_csv(classes, tmp_path / "results/hrsa/rl/emb/ag/probe.csv")
    frame = collect.read_probes([path, class_path])
    assert list(frame.columns) == [
        *collect.KEYS,
        *collect.PROBE_COLUMNS,
        *collect.PROBE_REGRESSION_COLUMNS,
    ]
    numeric = frame[frame["dataset"] == "quality"]
    assert set(numeric["task"]) == {"numeric"} and numeric["accuracy"].isna().all()
    assert numeric["r2"].notna().all() and numeric["r2_drop"].notna().all()
    cls = frame[frame["dataset"] == "ag"]
    assert set(cls["task"]) == {"class"} and cls["r2"].isna().all()
    assert cls["accuracy"].tolist() == [0.9, 0.9]
    table = collect.probe_accuracy(frame, "rl", "emb", "ag")  # the report's class readout
    assert table.loc["test", "reasoning"] == 0.9


# ----------------------------------------------------------------------------- stores


def _numeric_store_pair(tmp_path, label=lambda j, y: float(y)):
    """Two aligned stores whose last hidden state carries a numeric target along one direction;
    the second model is the first one stretched and slightly perturbed."""
    rng = np.random.default_rng(3)
    n_seq, d = 150, 8
    lens = rng.integers(3, 9, n_seq)
    seq = np.repeat(np.arange(n_seq), lens)
    target = rng.uniform(-1, 1, n_seq)
    direction = unit(rng.standard_normal((1, d)))[0]
    offset = 2.0 * unit(rng.standard_normal((1, d)))[0]
    tokens = offset + target[seq, None] * direction + 0.1 * rng.standard_normal((len(seq), d))
    layers = [rng.standard_normal((len(seq), d)), tokens]
    other = [layers[0] + 0.1, 2.0 * tokens + 0.02 * rng.standard_normal(tokens.shape)]
    sequences = [{"id": f"q{j}", "label": label(j, target[j])} for j in range(n_seq)]
    pos = np.concatenate([np.arange(m) for m in lens])
    tok = rng.integers(0, 50, len(seq))
    a = write_store(tmp_path / "a", layers, tok, seq, pos, sequences)
    b = write_store(tmp_path / "b", other, tok, seq, pos, sequences)
    return a, b


def test_probe_stores_reads_numeric_labels_and_writes_the_contract(tmp_path):
    a, b = _numeric_store_pair(tmp_path)
    rows = probe_stores(a, b, seed=42, task="numeric", alpha=1.0)
    score = keyed(rows)
    for direction, source in (("base_to_reasoning", "base"), ("reasoning_to_base", "reasoning")):
        assert score[direction, "test", source].r2 > 0.8
    # the second model is the first stretched: the probe mostly transfers
    assert abs(score["base_to_reasoning", "test", "reasoning"].r2_drop) < 0.2
    path = write_probe_csv(rows, tmp_path / "out" / "probe.csv")
    header = path.read_text().splitlines()[0]
    assert header == ",".join(CLASS_COLUMNS + REGRESSION_COLUMNS)
    # numeric strings are numbers too
    strings = _numeric_store_pair(tmp_path / "s", label=lambda j, y: repr(float(y)))
    assert probe_stores(*strings, seed=42, task="numeric") == rows


@pytest.mark.parametrize("bad", ["high", True, None, "nan"])
def test_a_non_numeric_label_names_the_store_and_the_sequence(tmp_path, bad):
    a, b = _numeric_store_pair(tmp_path, label=lambda j, y: bad if j == 7 else float(y))
    with pytest.raises(DataError) as info:
        probe_stores(a, b, task="numeric")
    message = str(info.value)
    assert "'q7'" in message
    assert str(tmp_path / "a") in message
    if bad is not None:  # a missing label is the labelled-dataset error
        assert "sequences.json" in message and "numeric" in message
    records = json.loads((tmp_path / "a" / "sequences.json").read_text())
    assert records[7]["label"] == bad
