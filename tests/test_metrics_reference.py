"""Reference values, closed forms, numerics and degenerate input of the HRSA metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma
from scipy.stats import hypergeom

from hrsa.errors import DataError, PairMismatchError
from hrsa.metrics import (
    debiased_cka,
    dimension_wise_correlation,
    geometry,
    inverse_row_entropy,
    jaccard_rows,
    knn_overlap,
    linear_cka,
    nearest_neighbours,
    procrustes,
    rbf_cka,
)
from hrsa.metrics.geometry import _top_sets


@pytest.fixture(scope="module")
def kornblith():
    """The data of Kornblith et al.'s CKA demo (values in notes/ecosystem-facts.md)."""
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = np.random.randn(100, 10) + X
    return X, Y


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- reference values and two formulations ---------------------------------------------------


def test_kornblith_reference_values(kornblith):
    X, Y = kornblith
    assert linear_cka(X, Y) == pytest.approx(0.55761, abs=5e-6)
    assert debiased_cka(X, Y) == pytest.approx(0.51346, abs=5e-6)
    assert rbf_cka(X, Y, threshold=0.5) == pytest.approx(0.65483, abs=5e-6)


def test_reference_values_hold_for_fp32_and_torch_inputs(kornblith):
    X, Y = kornblith
    for conv in (
        lambda a: a.astype(np.float32),
        torch.from_numpy,
        lambda a: torch.from_numpy(a).float(),
    ):
        assert linear_cka(conv(X), conv(Y)) == pytest.approx(0.55761, abs=5e-6)
        assert debiased_cka(conv(X), conv(Y)) == pytest.approx(0.51346, abs=5e-6)


def _hsic_gram(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def _hsic_unbiased_gram(K, L):
    n = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (
        np.trace(K @ L)
        + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ K @ L @ one)
    ) / (n * (n - 3))


def test_feature_space_equals_gram_formulation(kornblith):
    """Eq. 3-4 with N x N kernels vs the D x D feature-space computation, plain and debiased."""
    X, Y = kornblith
    X = X + 5.0  # the kernel formulas centre by themselves (plain) or are shift-invariant (U-stat)
    Kx, Ky = X @ X.T, Y @ Y.T
    plain = _hsic_gram(Kx, Ky) / math.sqrt(_hsic_gram(Kx, Kx) * _hsic_gram(Ky, Ky))
    assert linear_cka(X, Y) == pytest.approx(plain, abs=1e-7)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Kx, Ky = Xc @ Xc.T, Yc @ Yc.T
    unbiased = _hsic_unbiased_gram(Kx, Ky) / math.sqrt(
        _hsic_unbiased_gram(Kx, Kx) * _hsic_unbiased_gram(Ky, Ky)
    )
    assert debiased_cka(X, Y) == pytest.approx(unbiased, abs=1e-7)


def test_dimension_wise_correlation_is_mean_pearson():
    rng = _rng(1)
    X = rng.standard_normal((500, 6))
    Y = X * [1, -1, 2, 0.5, 1, 1] + rng.standard_normal((500, 6))
    expected = np.mean([np.corrcoef(X[:, j], Y[:, j])[0, 1] for j in range(6)])
    res = dimension_wise_correlation(X, Y)
    assert res.mean == pytest.approx(expected, abs=1e-7)
    assert res.n_dropped == 0 and res.per_feature[1] < 0  # signed


# --- closed forms ----------------------------------------------------------------------------


def test_permutation_map_gives_h_inv_one():
    rng = _rng(2)
    X = rng.standard_normal((400, 16)) @ rng.standard_normal((16, 16))
    perm = rng.permutation(16)
    res = procrustes(X, X[:, perm])
    assert res.h_inv == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(res.orthogonal_map, np.eye(16)[:, perm], atol=1e-6)
    assert res.residual == pytest.approx(0.0, abs=1e-6)


def test_haar_rotation_gives_expected_row_entropy():
    """E[row entropy of a Haar orthogonal D x D map] = psi(D/2 + 1) - psi(3/2)."""
    D = 64
    expected = 1 - (digamma(D / 2 + 1) - digamma(1.5)) / math.log(D)
    rng = _rng(3)
    got = []
    for _ in range(4):
        q, r = np.linalg.qr(rng.standard_normal((D, D)))
        Q = q * np.sign(np.diag(r))
        X = rng.standard_normal((1500, D))
        res = procrustes(X, X @ Q)
        assert np.allclose(res.orthogonal_map, Q, atol=1e-4)
        got.append(res.h_inv)
    assert np.mean(got) == pytest.approx(expected, abs=4e-3)
    assert inverse_row_entropy(np.full((4, 4), 0.5)) == pytest.approx(0.0, abs=1e-12)


def test_identical_inputs():
    rng = _rng(4)
    X = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8)) + 2.0
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-7)
    assert debiased_cka(X, X) == pytest.approx(1.0, abs=1e-7)
    assert rbf_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert dimension_wise_correlation(X, X).mean == pytest.approx(1.0, abs=1e-7)
    assert procrustes(X, X).h_inv == pytest.approx(1.0, abs=1e-9)
    for k in (1, 5, 50):
        assert knn_overlap(X, X, k) == 1.0


def test_independent_inputs_give_chance_overlap():
    """Neighbour sets of independent data intersect like two random k-subsets of N-1 rows:
    |A & B| is hypergeometric with mean k^2/(N-1)."""
    N, k = 1000, 50
    rng = _rng(5)
    X, Y = rng.standard_normal((N, 16)), rng.standard_normal((N, 16))
    nx, ny = nearest_neighbours(X, k), nearest_neighbours(Y, k)
    jac = jaccard_rows(nx, ny)
    inter = 2 * k * jac / (1 + jac)
    assert inter.mean() / k == pytest.approx(k / (N - 1), rel=0.05)
    dist = hypergeom(N - 1, k, k)
    i = np.arange(k + 1)
    expected_jaccard = float(np.sum(dist.pmf(i) * i / (2 * k - i)))
    assert knn_overlap(X, Y, k) == pytest.approx(expected_jaccard, rel=0.05)


def test_independent_inputs_give_near_zero_cka():
    rng = _rng(6)
    X, Y = rng.standard_normal((4000, 8)), rng.standard_normal((4000, 8))
    assert abs(debiased_cka(X, Y)) < 5e-3  # unbiased: centred on 0, may be negative
    assert linear_cka(X, Y) < 0.01


# --- numerics --------------------------------------------------------------------------------


def test_large_offset_in_fp32_changes_nothing():
    rng = _rng(7)
    X = rng.standard_normal((5000, 32)).astype(np.float32)
    Y = (X @ rng.standard_normal((32, 32)) + rng.standard_normal((5000, 32))).astype(np.float32)
    Xo, Yo = X + np.float32(1e4), Y - np.float32(1e4)
    # the offset inputs are rounded to fp32 once; compare against those exact values, centred
    ref_x, ref_y = Xo.astype(np.float64), Yo.astype(np.float64)
    assert abs(linear_cka(Xo, Yo) - linear_cka(ref_x, ref_y)) < 1e-6
    assert abs(linear_cka(Xo, Yo) - linear_cka(X, Y)) < 1e-6
    assert abs(debiased_cka(Xo, Yo) - debiased_cka(X, Y)) < 1e-6
    assert (
        abs(dimension_wise_correlation(Xo, Yo).mean - dimension_wise_correlation(X, Y).mean) < 1e-6
    )


def test_half_precision_inputs_are_upcast_before_products():
    rng = _rng(8)
    X = (rng.standard_normal((3000, 16)) * 50 + 300).astype(np.float16)  # x^2 overflows fp16
    Y = (X.astype(np.float32) + rng.standard_normal((3000, 16)) * 20).astype(np.float16)
    ref = linear_cka(X.astype(np.float64), Y.astype(np.float64))
    assert linear_cka(X, Y) == pytest.approx(ref, abs=1e-6)
    tx, ty = torch.from_numpy(X).bfloat16(), torch.from_numpy(Y).bfloat16()
    assert linear_cka(tx, ty) == pytest.approx(linear_cka(tx.double(), ty.double()), abs=1e-6)


def test_chunk_size_does_not_change_results():
    rng = _rng(9)
    X = rng.standard_normal((1000, 8))
    Y = X + rng.standard_normal((1000, 8))
    for f in (linear_cka, debiased_cka):
        assert f(X, Y, chunk_size=37) == pytest.approx(f(X, Y), abs=1e-12)
    assert procrustes(X, Y, chunk_size=10).h_inv == pytest.approx(procrustes(X, Y).h_inv, abs=1e-10)


# --- k-NN: exactness and deterministic ties --------------------------------------------------


def test_top_sets_break_ties_by_lower_index():
    sim = torch.tensor(
        [
            [-math.inf, 0.5, 0.5, 0.5, 0.25, 0.5],
            [0.75, -math.inf, 0.5, 0.75, 0.75, 0.0],
            [0.0, 0.0, -math.inf, 0.0, 0.0, 1.0],
        ],
        dtype=torch.float32,
    )
    sets = _top_sets(sim.clone(), [1, 2, 3])
    assert sets[1].tolist() == [[1], [0], [5]]
    assert sets[2].tolist() == [[1, 2], [0, 3], [0, 5]]
    assert sets[3].tolist() == [[1, 2, 3], [0, 3, 4], [0, 1, 5]]


def test_neighbours_match_brute_force_and_are_deterministic():
    from sklearn.neighbors import NearestNeighbors

    rng = _rng(10)
    Z = rng.standard_normal((400, 12))
    ours = nearest_neighbours(Z, [3, 10])
    nn = NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute").fit(Z)
    ref = np.sort(nn.kneighbors(return_distance=False), 1)
    assert np.array_equal(ours[10], ref)
    assert np.array_equal(nearest_neighbours(Z, 10, block_rows=33), ours[10])
    Zdup = np.concatenate([Z[:50], Z[:50], Z[:50]])  # exact duplicates: ties at similarity 1
    a = nearest_neighbours(Zdup, 2)
    assert np.array_equal(a[:50], np.stack([np.arange(50, 100), np.arange(100, 150)], 1))
    assert np.array_equal(a[50:100], np.stack([np.arange(50), np.arange(100, 150)], 1))
    assert np.array_equal(a, nearest_neighbours(Zdup, 2))


# --- degenerate input ------------------------------------------------------------------------


def test_zero_variance_features_are_dropped_and_counted():
    rng = _rng(11)
    X = rng.standard_normal((200, 6))
    Y = X + rng.standard_normal((200, 6))
    X[:, 1] = 3.0
    Y[:, 4] = -1.0
    Y[:, 1] = 7.0
    res = dimension_wise_correlation(X, Y)
    assert (res.dropped_x, res.dropped_y, res.n_dropped) == (1, 2, 2)
    keep = [0, 2, 3, 5]
    assert res.mean == pytest.approx(dimension_wise_correlation(X[:, keep], Y[:, keep]).mean)
    assert np.isnan(res.per_feature[[1, 4]]).all()
    assert np.isfinite(linear_cka(X, Y))  # constant features carry no variance, nothing else


def test_constant_representation_is_a_clear_error():
    rng = _rng(12)
    X = np.ones((50, 4))
    Y = rng.standard_normal((50, 4))
    for f in (linear_cka, debiased_cka, procrustes, dimension_wise_correlation, rbf_cka):
        with pytest.raises(DataError, match="zero|variance|median"):
            f(X, Y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_a_clear_error(bad):
    rng = _rng(13)
    X = rng.standard_normal((60, 4))
    Y = X.copy()
    Y[17, 2] = bad
    for f in (
        linear_cka,
        debiased_cka,
        procrustes,
        dimension_wise_correlation,
        knn_overlap,
        rbf_cka,
    ):
        with pytest.raises(DataError, match="NaN|Inf|non-finite"):
            f(X, Y)
    with pytest.raises(DataError, match="row 17"):
        linear_cka(X, Y)


def test_mismatched_rows_or_widths_are_errors():
    rng = _rng(14)
    X = rng.standard_normal((60, 4))
    with pytest.raises(PairMismatchError, match="rows"):
        linear_cka(X, X[:59])
    with pytest.raises(PairMismatchError, match="rows"):
        knn_overlap(X, X[:59], 5)
    Y = rng.standard_normal((60, 6))
    assert 0 < linear_cka(X, Y) < 1  # CKA compares different widths
    for f in (dimension_wise_correlation, procrustes):
        with pytest.raises(PairMismatchError, match="features"):
            f(X, Y)


def test_too_few_rows_for_k_or_for_the_estimators():
    rng = _rng(15)
    X = rng.standard_normal((10, 4))
    with pytest.raises(DataError, match="k = 10"):
        knn_overlap(X, X, 10)
    assert knn_overlap(X, X + 0.01, 9) == 1.0  # k = N-1: everybody else
    with pytest.raises(DataError, match="at least 4"):
        debiased_cka(X[:3], X[:3])
    with pytest.raises(DataError, match="at least 2"):
        linear_cka(X[:1], X[:1])
    Z = X.copy()
    Z[3] = 0.0
    with pytest.raises(DataError, match="zero vector"):
        knn_overlap(Z, X, 3)


def _lexicographic_neighbours(Z, ks):
    """Reference: fp32 inputs, fp64 similarities (row by row, so identical rows get identical
    values), every row sorted by (similarity descending, index ascending)."""
    z = np.asarray(Z, dtype=np.float32).astype(np.float64)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    sim = np.stack([(zn * row).sum(1) for row in zn])
    np.fill_diagonal(sim, -np.inf)
    n = sim.shape[0]
    order = np.lexsort((np.broadcast_to(np.arange(n), sim.shape), -sim), axis=1)
    return {k: np.sort(order[:, :k], 1) for k in ks}, sim


@pytest.mark.parametrize("kind", ["distinct", "rounded", "duplicated"])
def test_pruned_and_grouped_searches_are_exact(kind, monkeypatch):
    """With pruning forced on, 3400 rows and k up to 50 take the block-pruned search (with a
    ragged tail block); duplicated rows are searched as groups of distinct rows; rounded data
    has many ties in exact arithmetic."""
    monkeypatch.setattr(geometry, "_PRUNE_MIN_COLUMNS", 0)
    rng = _rng(16)
    if kind == "distinct":
        Z = rng.standard_normal((3400, 8))
    elif kind == "rounded":
        Z = (rng.standard_normal((3400, 5)) * 3).round() + 0.5
    else:
        Z = rng.standard_normal((400, 8))[rng.integers(0, 400, 3400)]
    ks = [1, 5, 50]
    ref, sim = _lexicographic_neighbours(Z.astype(np.float32), ks)
    got = nearest_neighbours(Z.astype(np.float32), ks)
    for k in ks:
        if kind != "rounded":
            assert np.array_equal(got[k], ref[k]), (kind, k)
            continue
        # rounded data tie in exact arithmetic (proportional or permuted rows), where two fp64
        # evaluations may round apart: the sets agree up to such ties (a few ulp)
        for r in np.flatnonzero((got[k] != ref[k]).any(1)):
            ours = sim[r, np.setdiff1d(got[k][r], ref[k][r])]
            theirs = sim[r, np.setdiff1d(ref[k][r], got[k][r])]
            assert abs(ours.min() - theirs.max()) < 1e-15, (kind, k, r)
