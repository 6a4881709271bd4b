"""The function-level metric: cross-model linear probes (paper 3.4.1; protocol and probe.csv:
docs/contracts.md, contract 2)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from hrsa.activations import write_store
from hrsa.errors import DataError
from hrsa.metrics import (
    cross_model_probe,
    probe_stores,
    sentence_embeddings,
    stratified_split,
    write_probe_csv,
)

PROBE_COLUMNS = ["direction", "split", "evaluated_on", "accuracy", "macro_f1", "weighted_f1"]


def clustered(n=300, d=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = 3.0 * rng.standard_normal((classes, d))
    return centres[labels] + rng.standard_normal((n, d)), labels


def test_stratified_split_is_80_10_10_per_class_and_seeded():
    labels = np.repeat([0, 1, 2, 3], [100, 50, 30, 20])
    train, dev, test = stratified_split(labels, seed=42)
    assert len(np.intersect1d(train, dev)) == len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, dev, test])), np.arange(200))
    for c, size in zip([0, 1, 2, 3], [100, 50, 30, 20], strict=True):
        assert (labels[dev] == c).sum() == round(0.1 * size)
        assert (labels[test] == c).sum() == round(0.1 * size)
    again = stratified_split(labels, seed=42)
    assert all(np.array_equal(a, b) for a, b in zip((train, dev, test), again, strict=True))
    assert not np.array_equal(stratified_split(labels, seed=1)[1], dev)
    with pytest.raises(DataError, match="empty"):
        stratified_split([0, 1, 0, 1], seed=0)


def test_identical_models_transfer_perfectly_and_rotation_breaks_transfer():
    X, y = clustered()
    rows = cross_model_probe(X, X.copy(), y, seed=42)
    assert len(rows) == 12
    assert {(r.direction, r.split, r.evaluated_on) for r in rows} == {
        (d, s, e)
        for d in ("base_to_reasoning", "reasoning_to_base")
        for s in ("train", "dev", "test")
        for e in ("base", "reasoning")
    }
    score = {(r.direction, r.split, r.evaluated_on): r for r in rows}

    def numbers(r):
        return r.accuracy, r.macro_f1, r.weighted_f1

    for d in ("base_to_reasoning", "reasoning_to_base"):
        for s in ("train", "dev", "test"):
            assert numbers(score[d, s, "base"]) == numbers(score[d, s, "reasoning"])
    assert score["base_to_reasoning", "test", "base"].accuracy > 0.9
    q = np.linalg.qr(np.random.default_rng(1).standard_normal((10, 10)))[0]
    rotated = {
        (r.direction, r.split, r.evaluated_on): r for r in cross_model_probe(X, X @ q, y, seed=42)
    }
    assert rotated["base_to_reasoning", "test", "base"].accuracy > 0.9
    assert rotated["base_to_reasoning", "test", "reasoning"].accuracy < 0.8
    assert rotated["reasoning_to_base", "test", "reasoning"].accuracy > 0.9


def test_probe_input_errors():
    X, y = clustered(n=60)
    with pytest.raises(DataError, match="shape"):
        cross_model_probe(X, X[:50], y)
    bad = X.copy()
    bad[3, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        cross_model_probe(X, bad, y)
    with pytest.raises(DataError, match="two classes"):
        cross_model_probe(X, X, np.zeros(60, dtype=int))


def test_sentence_embeddings_are_normalised_mean_pools():
    rng = np.random.default_rng(2)
    H = rng.standard_normal((7, 3)).astype(np.float16)
    seq = np.array([0, 0, 1, 1, 1, 2, 2])
    emb = sentence_embeddings(H, seq, 3, chunk_size=2)
    ref = np.stack([H[seq == s].astype(np.float64).mean(0) for s in range(3)])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(emb, ref, atol=1e-12)
    with pytest.raises(DataError, match="no rows"):
        sentence_embeddings(H, seq, 4)


def _store_pair(tmp_path, labelled=True):
    rng = np.random.default_rng(3)
    n_seq, d = 90, 8
    lens = rng.integers(3, 9, n_seq)
    seq = np.repeat(np.arange(n_seq), lens)
    labels = np.arange(n_seq) % 3
    centres = 2.0 * rng.standard_normal((3, d))
    tokens = centres[labels[seq]] + rng.standard_normal((len(seq), d))
    layers = [rng.standard_normal((len(seq), d)), tokens]
    other = [layers[0] + 0.1, tokens * 2 + 0.1 * rng.standard_normal(tokens.shape)]
    sequences = [
        {"id": f"n{j}", "label": int(labels[j]) if labelled else None} for j in range(n_seq)
    ]
    pos = np.concatenate([np.arange(m) for m in lens])
    tok = rng.integers(0, 50, len(seq))
    a = write_store(tmp_path / "a", layers, tok, seq, pos, sequences)
    b = write_store(tmp_path / "b", other, tok, seq, pos, sequences)
    return a, b


def test_probe_stores_writes_the_contract(tmp_path):
    a, b = _store_pair(tmp_path)
    rows = probe_stores(a, b, seed=42, C=1.0, max_iter=1000)
    path = write_probe_csv(rows, tmp_path / "out" / "probe.csv")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == PROBE_COLUMNS
        records = list(reader)
    assert len(records) == 12
    assert all(0 <= float(r["accuracy"]) <= 1 for r in records)
    test_acc = [float(r["accuracy"]) for r in records if r["split"] == "test"]
    assert min(test_acc) > 0.6  # the last layer carries the labels in both stores


def test_probe_needs_labels(tmp_path):
    a, b = _store_pair(tmp_path, labelled=False)
    with pytest.raises(DataError, match="label"):
        probe_stores(a, b)
