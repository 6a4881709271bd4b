"""Table 8's alternative metrics (src/hrsa/metrics/alternatives.py): closed-form and known-answer
tests (identical inputs, independent inputs, a rotation). Their declared invariances are checked
by tests/test_metrics_registry.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from hrsa.errors import DataError, PairMismatchError
from hrsa.metrics import (
    REGISTRY,
    behavioural_consistency,
    feature_wasserstein,
    gaussian_mutual_information,
    geodesic_correlation,
)
from hrsa.metrics.alternatives import MI_FLOOR, knn_graph


def _haar(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _correlated(rng, n=400, d=10, noise=0.3):
    mixing = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    x = rng.standard_normal((n, d)) @ mixing + 1.0
    return x, x + noise * rng.standard_normal((n, d))


def test_the_alternatives_are_registered_at_their_table8_level():
    want = {
        "feature_wasserstein": "representation",
        "geodesic_correlation": "geometry",
        "gaussian_mutual_information": "function",
        "behavioural_consistency": "function",
    }
    assert {k: REGISTRY[k].level for k in want} == want
    assert REGISTRY["behavioural_consistency"].needs_labels
    assert REGISTRY["geodesic_correlation"].defaults == {"k": 10, "sample": 128, "seed": 0}
    assert REGISTRY["gaussian_mutual_information"].defaults == {"p": 8}
    assert REGISTRY["rbf_cka"].level == "geometry"  # Table 8's other geometry alternative
    for name in want:  # the first docstring line is a whole sentence (summary.json shows it)
        assert REGISTRY[name].description.endswith((".", ")")), REGISTRY[name].description


# --------------------------------------------------------------------- feature_wasserstein


def test_feature_wasserstein_is_zero_for_identical_and_relabelled_rescaled_features():
    rng = np.random.default_rng(0)
    x, _ = _correlated(rng)
    assert feature_wasserstein(x, x) == pytest.approx(0.0, abs=1e-6)
    y = x[:, rng.permutation(x.shape[1])] * rng.uniform(0.2, 5.0, x.shape[1]) - 7.0
    assert feature_wasserstein(y, x) == pytest.approx(0.0, abs=1e-6)
    # features matched with half mass each onto two copies: still zero, widths may differ
    assert feature_wasserstein(x, np.hstack([x, 2 * x])) == pytest.approx(0.0, abs=1e-6)


def test_feature_wasserstein_closed_form_for_a_plane_rotation():
    # orthonormal, zero-mean columns: correlations are exact inner products; rotating features
    # 0 and 1 by theta moves mass 2 - 2 cos(theta) for each of them, so W2^2 = 4(1 - cos)/D
    rng = np.random.default_rng(1)
    n, d, theta = 300, 8, 0.3
    z = rng.standard_normal((n, d))
    q, _ = np.linalg.qr(z - z.mean(0))
    rot = np.eye(d)
    rot[:2, :2] = [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]
    want = math.sqrt(4 * (1 - math.cos(theta)) / d)
    assert feature_wasserstein(q @ rot, q) == pytest.approx(want, rel=1e-9)


def test_feature_wasserstein_matches_an_assignment_reference():
    # with equal widths the optimal plan is a permutation: W2^2 = 2 - 2 max_pi mean_j r_j,pi(j)
    rng = np.random.default_rng(2)
    x, y = _correlated(rng, d=12, noise=1.5)
    y = y[:, rng.permutation(12)]
    r = np.corrcoef(x.T, y.T)[:12, 12:]
    rows, cols = linear_sum_assignment(-r)
    want = math.sqrt(2 - 2 * r[rows, cols].mean())
    assert feature_wasserstein(x, y) == pytest.approx(want, rel=1e-9)


def test_feature_wasserstein_independent_and_rotated_inputs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 16))
    independent = feature_wasserstein(x, rng.standard_normal((2000, 16)))
    assert 1.3 < independent <= math.sqrt(2) + 1e-9  # no correlation: cost 2 per feature
    rotated = feature_wasserstein(x @ _haar(rng, 16), x)
    assert rotated > 0.5  # a rotation mixes the features: no plan undoes it
    assert feature_wasserstein(torch.from_numpy(x).float(), x) == pytest.approx(0.0, abs=1e-3)


def test_feature_wasserstein_constant_features_are_the_zero_profile():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 4))
    x[:, 2] = 3.0
    assert feature_wasserstein(x, x) == pytest.approx(0.0, abs=1e-6)
    y = x.copy()
    y[:, 2] = rng.standard_normal(200)  # constant vs varying: cost 1 (correlation 0)
    assert feature_wasserstein(x, y) == pytest.approx(math.sqrt(1 / 4), rel=1e-9)


def test_feature_wasserstein_rejects_bad_input():
    with pytest.raises(PairMismatchError, match="rows"):
        feature_wasserstein(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(DataError, match="non-finite"):
        feature_wasserstein(np.full((5, 2), np.nan), np.zeros((5, 2)))


# -------------------------------------------------------------------- geodesic_correlation


def test_geodesic_correlation_identical_similarity_transformed_and_independent():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 6))
    assert geodesic_correlation(x, x) == pytest.approx(1.0, abs=1e-12)
    similar = 2.5 * x @ _haar(rng, 6) + 10.0
    assert geodesic_correlation(similar, x) == pytest.approx(1.0, abs=1e-12)
    assert abs(geodesic_correlation(x, rng.standard_normal((400, 6)))) < 0.15
    sheared = x @ (np.eye(6) + np.diag(np.full(5, 3.0), 1))
    assert geodesic_correlation(sheared, x) < 0.95


def test_geodesic_correlation_sees_the_unrolled_manifold():
    # a three-turn spiral and the straight line of its arc length: their geodesic distances
    # agree (rank correlation ~1); their Euclidean distances do not (the turns lie close)
    rng = np.random.default_rng(6)
    t = np.sort(rng.uniform(0, 6 * math.pi, 600))
    spiral = (1 + t / (2 * math.pi))[:, None] * np.stack([np.cos(t), np.sin(t)], 1)
    steps = np.linalg.norm(np.diff(spiral, axis=0), axis=1)
    unrolled = np.concatenate([[0.0], np.cumsum(steps)])[:, None]
    assert geodesic_correlation(spiral, unrolled, k=5) > 0.9999
    assert geodesic_correlation(spiral, unrolled) > 0.9999
    assert spearmanr(pdist(spiral), pdist(unrolled)).statistic < 0.5


def test_geodesic_correlation_joins_disconnected_components():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 3))
    x[150:, 0] += 50.0  # two clusters, no k-NN edge between them
    assert connected_components(knn_graph(x, 5, connect=False), directed=False)[0] == 2
    g = knn_graph(x, 5)
    assert connected_components(g, directed=False)[0] == 1
    # the bridge is the closest pair between the clusters
    d = np.linalg.norm(x[:150, None, :] - x[None, 150:, :], axis=2)
    i, j = np.unravel_index(d.argmin(), d.shape)
    assert g[i, 150 + j] == pytest.approx(d.min()) or g[150 + j, i] == pytest.approx(d.min())
    value = geodesic_correlation(x, x @ _haar(rng, 3), k=5)
    assert value == pytest.approx(1.0, abs=1e-12)


def test_geodesic_correlation_subsamples_large_inputs_and_checks_k():
    rng = np.random.default_rng(8)
    x, y = _correlated(rng, n=500, d=5)
    assert -1.0 <= geodesic_correlation(x, y, max_rows=200) <= 1.0
    with pytest.raises(DataError, match="k-NN graph"):
        geodesic_correlation(x[:5], y[:5], k=10)
    with pytest.raises(PairMismatchError, match="same tokens"):
        geodesic_correlation(x, y[:-1])


# -------------------------------------------------------------- gaussian_mutual_information


def _gaussian_pair(rng, n, p, rho):
    z = rng.standard_normal((n, p))
    return z, rho * z + math.sqrt(1 - rho**2) * rng.standard_normal((n, p))


def test_gaussian_mi_known_answer_for_correlated_gaussians():
    rng = np.random.default_rng(9)
    x, y = _gaussian_pair(rng, 20000, 4, 0.6)
    want = -0.5 * 4 * math.log(1 - 0.6**2)  # 0.893 nats
    assert gaussian_mutual_information(x, y, p=None) == pytest.approx(want, rel=0.03)
    # the same signal as the top-4 principal components of wider, rotated representations
    d = 12
    wide_x = np.hstack([3 * x, 0.3 * rng.standard_normal((20000, d - 4))]) @ _haar(rng, d)
    wide_y = np.hstack([3 * y, 0.3 * rng.standard_normal((20000, d - 4))]) @ _haar(rng, d)
    assert gaussian_mutual_information(wide_x, wide_y, p=4) == pytest.approx(want, rel=0.03)


def test_gaussian_mi_independent_and_identical_inputs():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5000, 16))
    independent = gaussian_mutual_information(x, rng.standard_normal((5000, 16)))
    assert 0 <= independent < 0.03  # plug-in bias ~ p^2 / (2n) = 0.0064
    cap = -0.5 * 8 * math.log(MI_FLOOR)
    assert gaussian_mutual_information(x, x) == pytest.approx(cap)
    assert gaussian_mutual_information(x, x * 2 + 1) == pytest.approx(cap)


def test_gaussian_mi_rotation_and_without_truncation_any_invertible_map():
    rng = np.random.default_rng(11)
    x, y = _correlated(rng, n=1000, d=10, noise=1.0)
    base = gaussian_mutual_information(x, y)
    assert gaussian_mutual_information(x @ _haar(rng, 10), y) == pytest.approx(base, rel=1e-9)
    full = gaussian_mutual_information(x, y, p=None)
    mixed = x @ (rng.standard_normal((10, 10)) + 0.5 * np.eye(10)) + 3.0
    assert gaussian_mutual_information(mixed, y, p=None) == pytest.approx(full, rel=1e-8)
    # wider than tall: the principal basis comes from the n x n Gram matrix
    assert gaussian_mutual_information(x[:8], y[:8], p=None) > 0


def test_gaussian_mi_rejects_constant_input():
    with pytest.raises(DataError, match="constant"):
        gaussian_mutual_information(np.ones((20, 3)), np.zeros((20, 3)) + np.arange(3))


# ------------------------------------------------------------------ behavioural_consistency


@pytest.fixture(scope="module")
def overlapping():
    """Three overlapping classes (probes ~60-80% accurate), unequal feature scales, offset."""
    rng = np.random.default_rng(3)
    n, d = 600, 16
    labels = np.repeat(np.arange(3), n // 3)
    centres = 0.6 * rng.standard_normal((3, d))
    x = (centres[labels] + rng.standard_normal((n, d))) * np.exp(rng.uniform(-1, 1, d)) + 2.0
    return x, x + 0.8 * rng.standard_normal((n, d)), labels


def test_behavioural_consistency_identical_and_rotated_inputs(overlapping):
    x, y, labels = overlapping
    assert behavioural_consistency(x, x, labels) == 1.0
    rng = np.random.default_rng(12)
    assert behavioural_consistency(x @ _haar(rng, x.shape[1]), x, labels) == 1.0


def test_behavioural_consistency_is_invariant_to_invertible_affine_maps(overlapping):
    x, y, labels = overlapping
    base = behavioural_consistency(x, y, labels)
    assert 0.7 < base < 1.0  # a non-trivial agreement
    rng = np.random.default_rng(13)
    d = x.shape[1]
    for t in (
        x @ _haar(rng, d),
        x[:, rng.permutation(d)],
        x @ (rng.standard_normal((d, d)) + 0.5 * np.eye(d)) - 4.0,
        x * np.exp(rng.uniform(-1.5, 1.5, d)),
    ):
        assert behavioural_consistency(t, y, labels) == base


def test_behavioural_consistency_standard_scaler_is_not_rotation_invariant(overlapping):
    # the cross-model probe's StandardScaler ties the L2-penalised readout to the basis
    x, _, labels = overlapping
    changed = [
        behavioural_consistency(
            x @ _haar(np.random.default_rng(s), 16), x, labels, scaler="standard"
        )
        for s in range(4)
    ]
    assert min(changed) < 1.0


def test_behavioural_consistency_independent_inputs_agree_at_chance():
    rng = np.random.default_rng(14)
    labels = np.repeat([0, 1], 1000)
    x, y = rng.standard_normal((2000, 10)), rng.standard_normal((2000, 10))
    assert 0.4 < behavioural_consistency(x, y, labels) < 0.6
    assert behavioural_consistency(torch.from_numpy(x), x, labels) == 1.0


def test_behavioural_consistency_rejects_bad_labels():
    x = np.random.default_rng(15).standard_normal((50, 3))
    with pytest.raises(DataError, match="two classes"):
        behavioural_consistency(x, x, np.zeros(50))
    with pytest.raises(DataError, match="labels"):
        behavioural_consistency(x, x, np.zeros(49))
    with pytest.raises(ValueError, match="scaler"):
        behavioural_consistency(x, x, np.arange(50) % 2, scaler="minmax")
