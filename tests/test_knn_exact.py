"""k-NN neighbour sets equal an fp64 evaluation, also when every row shares a large component
(LLM "massive activations": all cosines near 1, beyond what fp32 products can order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrsa.metrics import geometry, knn_overlap, nearest_neighbours

KS = [5, 10, 50]


def fp64_neighbours(Z, ks):
    """Brute force: the stored values upcast to fp32 as the engine does, then everything in
    fp64, ranked by (similarity descending, row ascending). Row by row, so that identical rows
    get identical similarities (a BLAS GEMM may round identical columns differently)."""
    z = np.asarray(torch.as_tensor(Z).to(torch.float32), dtype=np.float64)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(zn)
    sim = np.stack([(zn * row).sum(1) for row in zn])
    np.fill_diagonal(sim, -np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(n), sim.shape), -sim), axis=1)
    return {k: np.sort(order[:, :k], 1) for k in ks}, sim


def boundary_gap(sim, ks):
    """Smallest fp64 gap between the k-th and (k+1)-th similarity over rows and ks, counting
    only distinct values (exact ties are settled by the index rule)."""
    s = -np.sort(-sim, 1)
    gaps = [s[:, k - 1] - s[:, k] for k in ks]
    return min(g[g > 0].min() for g in gaps)


def offset_data(n, d, offset, dtype, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, d))
    Z[:, 3] += offset  # one massive feature shared by every row
    return Z.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("offset", [1e3, 1e4])
def test_shared_offset_matches_fp64_brute_force(offset, dtype):
    Z = offset_data(1500, 24, offset, dtype)
    ref, sim = fp64_neighbours(Z, KS)
    assert boundary_gap(sim, KS) > 1e-14  # the fp64 reference itself is unambiguous
    got = nearest_neighbours(Z, KS)
    for k in KS:
        assert np.array_equal(got[k], ref[k]), k
    # fp16 storage as a torch tensor takes the same path (upcast to fp32 first)
    assert np.array_equal(nearest_neighbours(torch.from_numpy(Z), 10), ref[10])
    # the data have teeth: the plain fp32 search gets neighbour sets wrong
    old = geometry._neighbours_fp32(torch.from_numpy(Z.astype(np.float32)), KS)
    assert any(not np.array_equal(old[k].numpy(), ref[k]) for k in KS)


def test_dense_offset_exact_and_rechecks_only_the_boundary(monkeypatch):
    """Every row shares a large component spread over all features (all cosines near 1): the
    sets equal the fp64 brute force, and the fp64 re-check touches few candidates (with only
    the candidates shifted it took every pair at N=4096, D=512)."""
    rng = np.random.default_rng(6)
    Z = (rng.standard_normal((1500, 128)) + 20.0 * rng.standard_normal(128)).astype(np.float16)
    ref, sim = fp64_neighbours(Z, KS)
    assert boundary_gap(sim, KS) > 1e-14
    rechecked = []
    exact = geometry._BoundarySearch._exact

    def spy(self, q64, cols, mask):
        rechecked.append(int(mask.sum()))
        return exact(self, q64, cols, mask)

    monkeypatch.setattr(geometry._BoundarySearch, "_exact", spy)
    got = nearest_neighbours(Z, KS)
    for k in KS:
        assert np.array_equal(got[k], ref[k]), k
    # measured: 90 candidates in all (2084 with the unshifted query)
    assert sum(rechecked) < len(Z) // 4


def test_overlap_under_offset_equals_fp64_overlap():
    X = offset_data(800, 16, 1e4, np.float16, seed=1)
    Y = (X.astype(np.float32) + np.random.default_rng(2).standard_normal(X.shape)).astype(
        np.float16
    )
    rx, _ = fp64_neighbours(X, [5])
    ry, _ = fp64_neighbours(Y, [5])
    expected = np.mean(
        [len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(rx[5], ry[5], strict=True)]
    )
    assert knn_overlap(X, Y, 5) == expected


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_duplicate_rows_keep_index_order(offset):
    """The embedding layer: every repeat of a token is the same row, with or without an offset;
    its duplicates are tied (exact fp64 equality) and enter lowest index first."""
    rng = np.random.default_rng(3)
    vocab = rng.standard_normal((150, 12))
    vocab[:, 3] += offset
    tokens = rng.integers(0, 150, 1200)
    Z = vocab[tokens].astype(np.float16)
    ref, _ = fp64_neighbours(Z, KS)
    got = nearest_neighbours(Z, KS)
    for k in KS:
        assert np.array_equal(got[k], ref[k]), k
    for i in np.flatnonzero(np.bincount(tokens)[tokens] > 11)[:20]:  # >= 10 other copies
        copies = np.flatnonzero(tokens == tokens[i])
        assert np.array_equal(got[5][i], copies[copies != i][:5])
    # a few duplicates among distinct rows: the same rule
    W = np.concatenate([offset_data(900, 12, offset, np.float32), np.repeat(Z[:4], 3, 0)])
    ref, _ = fp64_neighbours(W, KS)
    got = nearest_neighbours(W, KS, block_rows=97)
    for k in KS:
        assert np.array_equal(got[k], ref[k]), k


def test_screen_error_bound_holds():
    """|screen score - fp64 value| <= the per-query bound on shifted offset data, for every
    query and candidate; the bound is not vacuous (within a factor of the observed error), and
    shifting the query as well makes it much smaller than the unshifted query's bound."""
    Z = torch.from_numpy(offset_data(600, 64, 1e4, np.float32, seed=4))
    uniq, inverse, counts = torch.unique(Z, dim=0, return_inverse=True, return_counts=True)
    rows = geometry._ShiftedRows(uniq, inverse, counts, "Z")
    g = torch.arange(len(uniq))
    q64, d64 = rows.unit(g), rows.shifted(g)
    kappa = geometry._screen_error_factor(64, torch.device("cpu"))
    scores, bound = rows.screen(q64, kappa)
    # r as the fp64 re-check computes it, one candidate at a time
    exact = torch.stack([(d64 * q).sum(1) for q in q64])
    err = (scores.double() - exact).abs()
    assert bool((err <= bound[:, None]).all())
    assert float((err / bound[:, None]).max()) > 1e-3
    # the unshifted query's bound (the search before): every pair's sum, and far looser
    unshifted = torch.minimum(q64.abs() @ rows.feature_max, q64.norm(dim=1) * rows.norm_max)
    assert bool(((q64.abs() @ d64.abs().T) <= unshifted[:, None] * (1 + 1e-12)).all())
    assert float((bound / (kappa * unshifted)).max()) < 1.0
    # a shared offset along a dense direction (every feature): the query's shift takes most of
    # the bound away, so the fp64 re-check stays at the boundary (it took every pair before)
    rng = np.random.default_rng(5)
    W = rng.standard_normal((600, 64)) + 20.0 * rng.standard_normal(64)
    uniq, inverse, counts = torch.unique(
        torch.from_numpy(W.astype(np.float32)), dim=0, return_inverse=True, return_counts=True
    )
    rows = geometry._ShiftedRows(uniq, inverse, counts, "W")
    q64 = rows.unit(torch.arange(len(uniq)))
    _, bound = rows.screen(q64, kappa)
    unshifted = torch.minimum(q64.abs() @ rows.feature_max, q64.norm(dim=1) * rows.norm_max)
    assert float((bound / (kappa * unshifted)).max()) < 0.1


def test_widening_and_full_fallback_stay_exact(monkeypatch):
    """A first candidate list too short for the boundary, and an error bound so loose that
    every candidate is re-checked in fp64 (the search widens to all rows): same answer."""
    Z = offset_data(700, 12, 1e3, np.float16, seed=5)
    ref, _ = fp64_neighbours(Z, KS)
    monkeypatch.setattr(geometry, "_first_width", lambda kmax: kmax + 1)
    got = nearest_neighbours(Z, KS)
    for k in KS:
        assert np.array_equal(got[k], ref[k]), k
    monkeypatch.setattr(geometry, "_screen_error_factor", lambda dim, device: 1.0)
    calls = []
    resolve = geometry._BoundarySearch.resolve

    def spy(self, scores, q64, q, bound, width):
        calls.append(min(width, self.m))
        return resolve(self, scores, q64, q, bound, width)

    monkeypatch.setattr(geometry._BoundarySearch, "resolve", spy)
    got = nearest_neighbours(Z, KS)
    assert max(calls) == len(Z)  # every candidate
    for k in KS:
        assert np.array_equal(got[k], ref[k]), k


def test_pruned_search_under_offset(monkeypatch):
    monkeypatch.setattr(geometry, "_PRUNE_MIN_COLUMNS", 0)
    Z = offset_data(3000, 8, 1e4, np.float32, seed=6)
    ref, _ = fp64_neighbours(Z, [1, 50])
    got = nearest_neighbours(Z, [1, 50])
    assert np.array_equal(got[1], ref[1]) and np.array_equal(got[50], ref[50])
