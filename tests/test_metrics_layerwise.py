"""The layer-by-layer engine on activation stores: streaming equals in-memory, the output
contract of results/hrsa/..., uncertainty, and degenerate stores."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hrsa.activations import ActivationStore, write_store
from hrsa.errors import ConfigError, DataError, PairMismatchError
from hrsa.metrics import (
    METRICS_COLUMNS,
    HRSASettings,
    Source,
    bootstrap_over_sequences,
    compare_stores,
    debiased_cka,
    dimension_wise_correlation,
    layerwise_similarity,
    linear_cka,
    procrustes,
    sequence_weights,
)
from hrsa.metrics.streaming import resolve_device

SMALL = dict(knn_k=[3, 10], bootstrap=12, permutations=6, chunk_size=300, seed=3)


def synthetic_layers(n_seq=60, d=8, n_layers=4, seed=0, offset=50.0):
    """Two related 'models': a shared random walk over layers, with a per-model rotation of
    growing size, noise and large feature offsets (massive-activation-like)."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(4, 30, n_seq)
    n = int(lens.sum())
    seq = np.repeat(np.arange(n_seq), lens)
    pos = np.concatenate([np.arange(m) for m in lens])
    tok = rng.integers(0, 40, n)
    h = rng.standard_normal((40, d))[tok]
    base, reason = [], []
    for i in range(n_layers):
        if i:
            h = np.tanh(h @ (np.eye(d) + 0.4 * rng.standard_normal((d, d)) / np.sqrt(d)))
            h = h + 0.2 * rng.standard_normal((n, d))
        base.append(h + offset * rng.standard_normal(d))
        tilt = np.linalg.qr(np.eye(d) + 0.1 * i * rng.standard_normal((d, d)))[0]
        reason.append(h @ tilt + 0.1 * i * rng.standard_normal((n, d)) - offset)
    sequences = [{"id": f"s{j}", "label": j % 3} for j in range(n_seq)]
    return base, reason, tok, seq, pos, sequences


def write_pair(tmp_path, layers=None, dtype="float32", **kw):
    base, reason, tok, seq, pos, sequences = layers or synthetic_layers(**kw)
    a = write_store(tmp_path / "base", base, tok, seq, pos, sequences, storage_dtype=dtype)
    b = write_store(tmp_path / "reason", reason, tok, seq, pos, sequences, storage_dtype=dtype)
    return a, b


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("stores"))


@pytest.fixture(scope="module")
def result(pair):
    return compare_stores(*pair, HRSASettings(**SMALL))


def test_streaming_equals_in_memory(pair):
    a, b = ActivationStore(pair[0]), ActivationStore(pair[1])
    xs = [a.layer(i) for i in range(a.n_hidden_states)]
    ys = [b.layer(i) for i in range(b.n_hidden_states)]
    assert Source(xs[0])._file is not None  # stores are read with pread, not through the map
    # tiny chunks and a tiny accumulator budget: many chunks, one layer per block
    lw = layerwise_similarity(xs, ys, chunk_size=97, accumulator_bytes=1)
    mem_x, mem_y = [np.array(x) for x in xs], [np.array(y) for y in ys]
    for i in range(len(xs)):
        for j in range(len(ys)):
            assert lw.linear_cka[i, j] == pytest.approx(linear_cka(mem_x[i], mem_y[j]), abs=1e-6)
            assert lw.dimension_wise_correlation[i, j] == pytest.approx(
                dimension_wise_correlation(mem_x[i], mem_y[j]).mean, abs=1e-6
            )
        assert lw.debiased_cka[i] == pytest.approx(debiased_cka(mem_x[i], mem_y[i]), abs=1e-6)
        p = procrustes(mem_x[i], mem_y[i])
        assert lw.procrustes_h_inv[i] == pytest.approx(p.h_inv, abs=1e-6)
        assert lw.procrustes_residual[i] == pytest.approx(p.residual, abs=1e-6)
    big = layerwise_similarity(xs, ys)  # one block, one chunk
    np.testing.assert_allclose(big.linear_cka, lw.linear_cka, atol=1e-6)
    np.testing.assert_allclose(
        big.dimension_wise_correlation, lw.dimension_wise_correlation, atol=1e-6
    )


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh)), open(path).readline().strip().split(",")


def test_output_contract(result, tmp_path):
    m, s = result.write(
        tmp_path / "x" / "metrics.csv",
        tmp_path / "x" / "summary.json",
        pair="p",
        stage="backbone",
        dataset="d",
    )
    rows, header = _read_csv(m)
    assert header == METRICS_COLUMNS
    n_l = result.n_hidden_states
    by = {}
    for r in rows:
        by.setdefault(r["metric"], []).append(r)
    assert {k: len(v) for k, v in by.items()} == {
        "dimension_wise_correlation": n_l**2,
        "linear_cka": n_l**2,
        "debiased_cka": n_l,
        "procrustes_h_inv": n_l,
        "procrustes_residual": n_l,
        "knn_overlap": 2 * n_l,
        "knn_overlap_null": 2 * n_l,
        "linear_cka_null": n_l,
    }
    for r in rows:
        assert (r["k"] != "") == r["metric"].startswith("knn")
        if r["metric"] not in ("linear_cka", "dimension_wise_correlation"):
            assert r["layer_base"] == r["layer_reason"]
        has_ci = r["ci_low"] != ""
        diagonal = r["layer_base"] == r["layer_reason"]
        if r["metric"] in ("linear_cka", "dimension_wise_correlation"):
            assert has_ci == diagonal
        if r["metric"] == "knn_overlap" or (
            r["metric"] == "procrustes_h_inv" and int(r["layer_base"]) == n_l - 1
        ):
            assert has_ci
        if has_ci and not r["metric"].endswith("_null"):
            assert float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"])
    summary = json.loads(s.read_text())
    assert set(summary) >= {
        "pair",
        "stage",
        "dataset",
        "n_tokens",
        "n_sequences",
        "n_hidden_states",
        "dim",
        "headline",
        "null",
        "dropped_features",
        "settings",
    }
    assert (summary["pair"], summary["stage"], summary["dataset"]) == ("p", "backbone", "d")
    h = summary["headline"]
    assert set(h) == {
        "linear_cka_diagonal_mean",
        "linear_cka_final",
        "dimension_wise_correlation_diagonal_mean",
        "dimension_wise_correlation_final",
        "h_inv_final",
        "knn_overlap_mean",
        "knn_overlap_mean_transformer_layers",
    }
    assert (
        set(h["knn_overlap_mean"]) == set(h["knn_overlap_mean_transformer_layers"]) == {"3", "10"}
    )
    final = [r for r in by["linear_cka"] if r["layer_base"] == r["layer_reason"] == str(n_l - 1)]
    assert h["linear_cka_final"]["value"] == pytest.approx(float(final[0]["value"]))
    for entry in (h["linear_cka_final"], h["h_inv_final"], h["knn_overlap_mean"]["10"]):
        assert set(entry) == {"value", "ci_low", "ci_high"}
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert set(summary["null"]["linear_cka_final"]) == {"mean", "p_value", "n"}
    assert set(summary["null"]["knn_overlap_mean"]) == {"3", "10"}
    assert summary["dropped_features"] == {"base": 0, "reasoning": 0}
    assert not list(tmp_path.glob("x/.*"))  # no temporary files left behind


def test_knn_layer_means_with_and_without_the_embedding_layer(result):
    """Both k-NN layer means are the means of the per-layer overlaps (0..L and 1..L); layer 0,
    where repeated tokens are tied rows, is reported on its own with the reason it differs."""
    s = result.summary()
    by_k = {}
    for r in result.records():
        if r["metric"] == "knn_overlap":
            by_k.setdefault(str(r["k"]), []).append(r["value"])
    for k, values in by_k.items():
        every = s["headline"]["knn_overlap_mean"][k]
        transformer = s["headline"]["knn_overlap_mean_transformer_layers"][k]
        assert every["value"] == pytest.approx(np.mean(values))
        assert transformer["value"] == pytest.approx(np.mean(values[1:]))
        assert transformer["ci_low"] <= transformer["value"] <= transformer["ci_high"]
        assert s["knn_overlap_layers"]["layer_0"][k] == pytest.approx(values[0])
        # the synthetic layer 0 is a token lookup: ties broken alike in both models
        assert values[0] > transformer["value"]
    assert set(s["null"]["knn_overlap_mean_transformer_layers"]) == set(by_k)
    assert set(s["bootstrap_bias"]["knn_overlap_mean_transformer_layers"]) == set(by_k)
    notes = s["knn_overlap_layers"]
    assert "1..L" in notes["knn_overlap_mean_transformer_layers"]
    assert "tie" in notes["layer_0_ties"] and "Table 4" in notes["table4"]


def test_related_models_beat_the_permutation_null(result):
    s = result.summary()
    n_perm = SMALL["permutations"]
    assert s["null"]["linear_cka_final"]["p_value"] == pytest.approx(1 / (n_perm + 1))
    assert s["null"]["linear_cka_final"]["mean"] < 0.2 < s["headline"]["linear_cka_final"]["value"]
    knn = s["null"]["knn_overlap_mean"]["10"]
    assert knn["p_value"] == pytest.approx(1 / (n_perm + 1))
    assert knn["mean"] < 0.05 < s["headline"]["knn_overlap_mean"]["10"]["value"]


def test_sequence_bootstrap_reflects_sequences_not_tokens():
    """A sequence-level effect: 20 sequences x 50 identical tokens. The CI of the mean must be
    as wide as 20 observations allow, not 1000."""
    rng = np.random.default_rng(0)
    effect = rng.standard_normal(20)
    seq = np.repeat(np.arange(20), 50)
    values = effect[seq]

    def mean(w):
        return float(np.sum(w * values) / np.sum(w))

    iv = bootstrap_over_sequences(mean, seq, n_replicates=400, seed=1)
    assert iv.ci_low <= iv.value <= iv.ci_high
    sd = effect.std() / np.sqrt(20)
    assert 2.5 * sd < iv.ci_high - iv.ci_low < 5.5 * sd
    w = sequence_weights(seq, 20, 3, 0)
    assert w.shape == (3, 1000) and (w.reshape(3, 20, 50).std(2) == 0).all()
    assert (w.sum(1) == 1000).all()


def test_subsample_when_store_is_larger_than_knn_max_tokens(pair):
    res = compare_stores(*pair, HRSASettings(**{**SMALL, "knn_max_tokens": 300}))
    s = res.summary()
    assert s["settings"]["subsample_tokens"] == 300
    assert s["n_tokens"] > 300
    h = s["headline"]["linear_cka_diagonal_mean"]
    assert h["ci_low"] <= h["value"] <= h["ci_high"]


def test_misaligned_stores_are_refused(tmp_path):
    base, reason, tok, seq, pos, sequences = synthetic_layers(n_seq=10)
    a = write_store(tmp_path / "a", base, tok, seq, pos, sequences)
    tok2 = tok.copy()
    tok2[25] += 1
    b = write_store(tmp_path / "b", reason, tok2, seq, pos, sequences)
    with pytest.raises(PairMismatchError, match="token ids differ"):
        compare_stores(a, b, SMALL)
    n = int((seq < 9).sum())
    c = write_store(
        tmp_path / "c", [r[:n] for r in reason], tok[:n], seq[:n], pos[:n], sequences[:9]
    )
    with pytest.raises(PairMismatchError):
        compare_stores(a, c, SMALL)


def test_nan_in_a_store_names_sequence_and_position(tmp_path):
    a, b = write_pair(tmp_path, n_seq=10)
    layer = np.load(b / "hidden_002.npy", mmap_mode="r+")
    layer[30, 1] = np.nan
    layer.flush()
    del layer
    store = ActivationStore(b)
    sid = store.sequences[int(store.sequence_index[30])]["id"]
    with pytest.raises(
        DataError, match=rf"hidden state 2.*'{sid}', token position {int(store.position[30])}"
    ):
        # the NaN breaks the checksum too, which compare_stores would report first
        # (tests/test_faults_store.py); here the engine's own message is under test
        compare_stores(a, b, SMALL, verify=False)


def test_zero_variance_layer_and_features_are_reported_not_silent(tmp_path):
    base, reason, tok, seq, pos, sequences = synthetic_layers(n_seq=30)
    base[1] = np.full_like(base[1], 2.5)  # a dead layer
    reason[3][:, 0] = 1.0  # a dead feature
    a, b = write_pair(tmp_path, (base, reason, tok, seq, pos, sequences))
    res = compare_stores(a, b, SMALL)
    assert np.isnan(res.layerwise.linear_cka[1, :]).all()
    assert np.isfinite(res.layerwise.linear_cka[2, :]).all()
    s = res.summary()
    assert any("base hidden state 1" in u and "zero variance" in u for u in s["undefined"])
    assert s["dropped_features"] == {"base": 0, "reasoning": 1}
    assert s["dropped_features_per_layer"]["base"][1] == 8
    assert np.isfinite(res.layerwise.dimension_wise_correlation[3, 3])
    json.dumps(s, allow_nan=False)  # NaN never leaks into the JSON
    assert s["headline"]["linear_cka_diagonal_mean"]["value"] is None


def test_fewer_tokens_than_k_is_a_clear_error(tmp_path):
    a, b = write_pair(tmp_path, n_seq=2)
    with pytest.raises(DataError, match="k = 50"):
        compare_stores(a, b, {**SMALL, "knn_k": [5, 50]})


def test_settings_from_config():
    s = HRSASettings.from_config(
        {"knn_k": [50, 5, 10], "bootstrap": "7", "datasets": ["x"], "probe": {"seed": 1}}
    )
    assert s.knn_k == (5, 10, 50) and s.bootstrap == 7
    with pytest.raises(ConfigError, match=r"config key hrsa: unknown settings \['knn_kk'\]"):
        HRSASettings.from_config({"knn_kk": [5]})
    with pytest.raises(ConfigError, match=r"config key hrsa\.ci: must be in \(0, 1\)"):
        HRSASettings.from_config({"ci": 1.5})
    with pytest.raises(ConfigError, match="config key device: 'tpu' is not a torch device"):
        resolve_device("tpu")


def test_no_bootstrap_no_permutations_and_a_single_sequence(tmp_path):
    a, b = write_pair(tmp_path, n_seq=1)
    res = compare_stores(a, b, {**SMALL, "knn_k": [3], "permutations": 0})
    rows = res.records()
    assert not [r for r in rows if r["metric"].endswith("_null")]
    assert all(r["ci_low"] is None for r in rows)  # one sequence: nothing to resample
    s = res.summary()
    assert any("at least 2 sequences" in u for u in s["undefined"])
    assert s["null"]["linear_cka_final"] == {"mean": None, "p_value": None, "n": 0}
    assert s["headline"]["linear_cka_final"]["ci_low"] is None
    json.dumps(s, allow_nan=False)
    res = compare_stores(a, b, {**SMALL, "knn_k": [3], "bootstrap": 0})
    assert res.summary()["headline"]["h_inv_final"]["ci_high"] is None
