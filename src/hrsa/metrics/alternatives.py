"""Table 8's alternative metrics (paper Appendix B): one per level besides the defaults.

Representation level: :func:`feature_wasserstein` (optimal transport between the two models'
feature distributions, no rotation allowed). Geometry level: :func:`geodesic_correlation`
(rank correlation of shortest-path distances along each model's k-NN graph; RBF CKA is
:func:`hrsa.metrics.geometry.rbf_cka`). Function level: :func:`gaussian_mutual_information`
(Gaussian mutual information between the top principal components) and
:func:`behavioural_consistency` (exact-match agreement of the two models' own probes).

Every function takes two row-aligned (n, D) representations (numpy or torch, any float dtype)
and returns a float: ``feature_wasserstein`` from the streamed statistics of the paper's metrics
(:func:`~hrsa.metrics.streaming.pair_statistics`), the others in fp64 on the CPU. Each is
registered with its level and declared invariances, which ``tests/test_metrics_registry.py``
checks; docs/metrics-table8.md describes what each computes and why its invariances hold.
Undefined values raise :class:`~hrsa.errors.DataError`; representations of different tokens
(row counts) :class:`~hrsa.errors.PairMismatchError`.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch

from ..errors import DataError, PairMismatchError
from .function import PROBE_C, PROBE_MAX_ITER, PROBE_SEED, _as_numpy, stratified_split
from .registry import TRANSFORMS, metric
from .streaming import DEFAULT_CHUNK_SIZE, pair_statistics

log = logging.getLogger("hrsa.metrics")


def _pair(X, Y, what: str, *, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Both representations as finite fp64 (n, D) arrays with the same n >= ``min_rows``."""
    x, y = _as_numpy(X, "X"), _as_numpy(Y, "Y")
    for name, z in (("X", x), ("Y", y)):
        if z.ndim != 2 or z.shape[1] < 1:
            raise DataError(f"{what}: {name} must be an (n, D) matrix, got shape {z.shape}")
        if not np.isfinite(z).all():
            raise DataError(f"{what}: NaN or Inf in {name}")
    if x.shape[0] != y.shape[0]:
        raise PairMismatchError(
            f"{what}: X has {x.shape[0]} rows but Y has {y.shape[0]}: the two representations "
            "must describe the same tokens, row by row"
        )
    if x.shape[0] < min_rows:
        raise DataError(f"{what}: needs at least {min_rows} rows, got {x.shape[0]}")
    return x, y


# ---------------------------------------------------------------------------------------------
# Representation level: optimal transport between feature distributions
# ---------------------------------------------------------------------------------------------


@metric(
    level="representation",
    invariant=("permutation", "isotropic_scale", "translation", "anisotropic_scale"),
    variant=("rotation", "general_linear"),
    notes="Each feature is standardised on its own (centred, unit RMS), so a shift or a positive "
    "rescaling of any feature changes nothing; the transport plan may move whole features onto "
    "other features (a matching, found by POT's exact solver), so relabelling features changes "
    "nothing; a rotation replaces every feature by a mixture of features, which no plan can "
    "undo, so the cost rises.",
)
def feature_wasserstein(X, Y, *, chunk_size: int = DEFAULT_CHUNK_SIZE, device=None) -> float:
    """Wasserstein-2 distance between the two models' feature distributions (OT without rotation).

    Each feature j of a model is a point z_j in R^n: its activation profile over the n shared
    tokens, centred and scaled to unit RMS (an exactly constant feature: the zero profile). Each
    model is the uniform distribution over its D points; the ground cost between feature j of X
    and feature k of Y is ||z_j - z_k||^2 / n = 2 - 2 r_jk, r_jk their Pearson correlation over
    the tokens (1 when exactly one of them is constant, 0 when both are). Returns
    W_2 = sqrt(min_P <P, M>) over the transport plans P with uniform marginals (``ot.emd2``,
    exact network simplex); with equal widths the optimum is a permutation, so
    W_2^2 = 2 - 2 max_pi mean_j r_{j, pi(j)}. In [0, 2]: 0 iff the features of X are those of
    Y relabelled, each shifted and rescaled by a positive factor. The correlations come from
    the streamed centred cross product Xc^T Yc (:func:`~hrsa.metrics.streaming.pair_statistics`,
    as dimension-wise correlation), so memory stays O(D^2).

    Mass moves between *features* (basis directions), never between linear combinations of
    them: a rotation X -> XQ mixes the features, so the cost grows (rotation-variant, as the
    representation level requires); a feature permutation is absorbed by the plan.
    """
    import ot

    st = pair_statistics(X, Y, device=device, chunk_size=chunk_size)
    inv_norm, norm_sq = [], []  # 1 / ||Xc_j|| and ||z_j||^2 / n (0 for a constant feature)
    for mom, terms in ((st.x_mom, st.x_self), (st.y_mom, st.y_self)):
        diag = terms.diag.to("cpu", torch.float64).numpy()
        varying = ~mom.constant.cpu().numpy() & (diag > 0)
        inv_norm.append(np.where(varying, 1.0 / np.sqrt(np.where(varying, diag, 1.0)), 0.0))
        norm_sq.append(varying.astype(np.float64))
    r = st.cross.cross.to("cpu", torch.float64).numpy() * inv_norm[0][:, None] * inv_norm[1]
    cost = np.maximum(norm_sq[0][:, None] + norm_sq[1][None, :] - 2.0 * r, 0.0)
    a = np.full(cost.shape[0], 1.0 / cost.shape[0])
    b = np.full(cost.shape[1], 1.0 / cost.shape[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w2 = float(ot.emd2(a, b, cost, numItermax=max(100_000, 50 * cost.size)))
    for w in caught:  # POT warns (UserWarning) when the network simplex stops early
        text = str(w.message)
        if "numItermax" in text or "infeasible" in text.lower() or "unbounded" in text.lower():
            raise DataError(f"feature_wasserstein: the exact OT solver did not finish: {text}")
        warnings.warn(w.message, w.category, stacklevel=2)
    return math.sqrt(max(w2, 0.0))


# ---------------------------------------------------------------------------------------------
# Geometry level: geodesic distances along k-NN graphs
# ---------------------------------------------------------------------------------------------

#: fp64 entries of one block of distances in the k-NN search (4 MiB: a block that stays in
#: cache is faster)
_SEARCH_BLOCK_ELEMENTS = 1 << 19


def _component_bridges(
    x: np.ndarray, xc: torch.Tensor, sq: torch.Tensor, comp: np.ndarray, c: int
) -> tuple[np.ndarray, np.ndarray]:
    """The c - 1 edges that join the components of a k-NN graph: a minimum spanning tree of the
    components, two components being as far apart as their closest pair of rows (Euclidean).
    The fewest and shortest bridges; joining every pair of components (scikit-learn's Isomap)
    would add shortcuts across a curved manifold. One blocked pass over the squared distances
    (Gram form) with the columns grouped by component finds the closest pairs; each bridge's
    far end is then found exactly."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    n = x.shape[0]
    order = np.argsort(comp, kind="stable")
    counts = np.bincount(comp, minlength=c)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    xo, sqo = xc[torch.from_numpy(order)], sq[torch.from_numpy(order)]
    best = np.full((c, c), np.inf)
    best_row = np.zeros((c, c), dtype=np.int64)
    step = max(1, _SEARCH_BLOCK_ELEMENTS // n)
    for a in range(0, n, step):
        b = min(a + step, n)
        d2 = torch.addmm(sqo[None, :], xc[a:b], xo.T, alpha=-2.0).add_(sq[a:b, None])
        per_comp = np.minimum.reduceat(d2.numpy(), starts, axis=1)
        block_comp = comp[a:b]
        for ci in np.unique(block_comp):
            sel = np.flatnonzero(block_comp == ci)
            arg = per_comp[sel].argmin(0)
            val = per_comp[sel][arg, np.arange(c)]
            better = val < best[ci]
            best[ci, better] = val[better]
            best_row[ci, better] = a + sel[arg[better]]
    # dense csgraph input: 0 is "no edge", so a zero gap (duplicate rows) becomes the tiniest
    gap = np.triu(np.maximum(np.minimum(best, best.T), np.finfo(np.float64).tiny), 1)
    rows, cols = [], []
    for ca, cb in zip(*minimum_spanning_tree(gap).nonzero(), strict=True):
        if best[cb, ca] < best[ca, cb]:
            ca, cb = cb, ca
        i = best_row[ca, cb]
        members = order[starts[cb] : starts[cb] + counts[cb]]
        rows.append(i)
        cols.append(members[np.argmin(np.sum((x[members] - x[i]) ** 2, axis=1))])
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def knn_graph(x: np.ndarray, k: int, name: str = "X", *, connect: bool = True):
    """Symmetric Euclidean k-NN graph of the rows of ``x`` (n x n scipy CSR, edge weight the
    Euclidean length ||x_i - x_j||): i -- j when j is among the k nearest rows of i or i among
    those of j (self excluded). Neighbours are chosen on squared distances of the centred rows
    (Gram form, fp64, in row blocks, ``torch.topk``); each edge's length is then computed
    directly, so duplicate rows give zero-length edges (which scipy's csgraph keeps as edges).

    ``connect``: when the graph has several connected components, they are joined by a minimum
    spanning tree of bridges, each the closest pair of rows between two components
    (:func:`_component_bridges`), so every geodesic distance is finite."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = x.shape[0]
    if not 1 <= k <= n - 1:
        raise DataError(f"{name}: a k-NN graph with k = {k} needs 1 <= k <= n - 1 = {n - 1}")
    xc = x - x.mean(0)
    sq = np.einsum("ij,ij->i", xc, xc)
    xt, sqt = torch.from_numpy(xc), torch.from_numpy(sq)
    step = max(1, _SEARCH_BLOCK_ELEMENTS // n)
    cols = np.empty((n, k), dtype=np.int64)
    for a in range(0, n, step):
        b = min(a + step, n)
        # ||x_j||^2 - 2 x_i . x_j orders the rows j as ||x_i - x_j||^2 does
        key = torch.addmm(sqt[None, :], xt[a:b], xt.T, alpha=-2.0)
        key[torch.arange(b - a), torch.arange(a, b)] = math.inf
        cols[a:b] = torch.topk(key, k, dim=1, largest=False, sorted=False).indices.numpy()
    rows = np.repeat(np.arange(n), k)
    cols = cols.ravel()
    if connect:
        c, comp = connected_components(
            sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)), directed=False
        )
        if c > 1:
            br, bc = _component_bridges(x, xt, sqt, comp, c)
            rows, cols = np.concatenate([rows, br]), np.concatenate([cols, bc])
    length = np.linalg.norm(x[rows] - x[cols], axis=1)
    return sp.csr_matrix((length, (rows, cols)), shape=(n, n))


@metric(
    level="geometry",
    defaults={"k": 10, "sample": 128, "seed": 0},
    invariant=("rotation", "permutation", "isotropic_scale", "translation"),
    variant=("anisotropic_scale", "general_linear"),
    notes="Euclidean k-NN graphs and their path lengths are unchanged by orthogonal maps and "
    "shifts and scale with an isotropic factor, which the rank correlation ignores; a shear or "
    "an anisotropic stretch changes which rows are neighbours and the path lengths.",
)
def geodesic_correlation(
    X, Y, k: int = 10, sample: int = 128, seed: int = 0, *, max_rows: int = 8192
) -> float:
    """Spearman correlation of the two models' geodesic (k-NN graph shortest-path) distances.

    Each model's rows get a symmetric Euclidean k-NN graph (:func:`knn_graph`, edge length
    ||x_i - x_j||); the geodesic distance between two rows is the length of the shortest path
    along it (``scipy.sparse.csgraph.shortest_path``, Dijkstra, undirected), the discrete
    Riemannian distance on the token manifold (Table 8: "Riemannian metrics, geodesic distance
    comparison"). A seeded subsample of ``sample`` rows (``numpy.random.default_rng(seed)``, the
    same rows for both models) gives sample(sample-1)/2 pairs; the result is Spearman's rho
    between the two models' geodesic distances over those pairs.

    Disconnected graphs: the components are joined by a minimum spanning tree of bridges, each
    the closest pair of rows between two components (:func:`knn_graph`), so every distance is
    finite and every sampled pair counts. More than ``max_rows`` rows: the graphs are built on
    a seeded subsample of ``max_rows`` rows (the same rows for both models), bounding the
    O(n^2 D) neighbour search.
    """
    from scipy.sparse.csgraph import shortest_path
    from scipy.stats import spearmanr

    x, y = _pair(X, Y, "geodesic_correlation", min_rows=3)
    if sample < 3:
        raise DataError(f"geodesic_correlation: sample must be >= 3, got {sample}")
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    if n > max_rows:
        keep = np.sort(rng.choice(n, size=max_rows, replace=False))
        x, y, n = x[keep], y[keep], max_rows
    sources = np.sort(rng.choice(n, size=min(int(sample), n), replace=False))
    iu = np.triu_indices(sources.size, 1)
    geo = []
    for name, z in (("X", x), ("Y", y)):
        g = knn_graph(z, int(k), f"geodesic_correlation: {name}")
        dist = shortest_path(g, method="D", directed=False, indices=sources)
        geo.append(dist[:, sources][iu])
    gx, gy = geo
    if np.ptp(gx) == 0 or np.ptp(gy) == 0:
        raise DataError("geodesic_correlation: all sampled geodesic distances are equal")
    return float(spearmanr(gx, gy).statistic)


# ---------------------------------------------------------------------------------------------
# Function level: mutual information and behavioural consistency
# ---------------------------------------------------------------------------------------------

#: 1 - rho^2 is floored here, so identical inputs give a finite value: each canonical pair
#: contributes at most -0.5 log(1e-12) = 13.8 nats
MI_FLOOR = 1e-12


def principal_basis(x: np.ndarray, p: int | None, name: str = "X") -> np.ndarray:
    """Orthonormal basis (n x p') of the span of the top-p principal component scores of the
    rows of ``x`` (column-centred); p' = min(p, rank), rank counting the components with
    variance above 1e-12 of the largest. ``p=None``: every component."""
    xc = x - x.mean(0)
    n, d = xc.shape
    if n <= d:  # eigenvectors of the n x n Gram matrix are the score directions
        evals, evecs = np.linalg.eigh(xc @ xc.T)
        evals, evecs = evals[::-1], evecs[:, ::-1]
    else:
        evals, vecs = np.linalg.eigh(xc.T @ xc)
        evals, vecs = evals[::-1], vecs[:, ::-1]
    if not evals[0] > 0:
        raise DataError(f"{name}: every feature is constant; no principal components")
    rank = int((evals > 1e-12 * evals[0]).sum())
    q = rank if p is None else min(int(p), rank)
    if q < 1:
        raise DataError(f"{name}: p must be >= 1, got {p}")
    if n <= d:
        return evecs[:, :q]
    basis, _ = np.linalg.qr(xc @ vecs[:, :q])
    return basis


@metric(
    level="function",
    defaults={"p": 8},
    invariant=("rotation", "permutation", "isotropic_scale", "translation"),
    variant=("anisotropic_scale", "general_linear"),
    notes="Canonical correlations are invariant to invertible linear maps within each "
    "subspace, and an orthogonal map, a global scale or a shift leaves the top-p principal "
    "subspace (as a span of the token axis) unchanged; an anisotropic stretch or a shear "
    "changes which directions are the top p. With p >= D (no truncation) the estimate is "
    "invariant to every invertible linear map (tests/test_metrics_alternatives.py).",
)
def gaussian_mutual_information(X, Y, p: int | None = 8) -> float:
    """Gaussian mutual information (nats) between the two models' top-p principal components.

    I = -1/2 sum_i log(1 - rho_i^2), rho_i the canonical correlations of the two top-p principal
    subspaces.

    Estimator: each representation is column-centred and reduced to the span of its top-p
    principal component scores (:func:`principal_basis`; ``p=None`` keeps all); the canonical
    correlations rho_i are the singular values of Qx^T Qy (orthonormal bases of the two spans);
    the mutual information of jointly Gaussian variables with these second moments is
    -1/2 sum log(1 - rho_i^2): exact (up to sampling error) for Gaussian data, otherwise a
    second-moment summary that can under- or overstate the information. 1 - rho^2 is floored
    at ``MI_FLOOR`` (identical inputs: 13.8 nats per component). Plug-in bias: about
    p_x p_y / (2n) nats for independent inputs.
    """
    x, y = _pair(X, Y, "gaussian_mutual_information", min_rows=3)
    if p is not None and p < 1:
        raise DataError(f"gaussian_mutual_information: p must be >= 1 or None, got {p}")
    qx = principal_basis(x, p, "gaussian_mutual_information: X")
    qy = principal_basis(y, p, "gaussian_mutual_information: Y")
    rho = np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)
    return float(-0.5 * np.sum(np.log(np.maximum(1.0 - rho * rho, MI_FLOOR))))


def _whitener(train: np.ndarray):
    """Centre with the train mean and whiten with the train covariance (restricted to its
    rank): whitened train rows have identity covariance."""
    mean = train.mean(0)
    _, s, vt = np.linalg.svd(train - mean, full_matrices=False)
    if not s[0] > 0:
        raise DataError("behavioural_consistency: the training rows are all equal")
    keep = s > s[0] * max(train.shape) * np.finfo(np.float64).eps
    w = vt[keep].T * (math.sqrt(train.shape[0]) / s[keep])
    return lambda z: (z - mean) @ w


def _fit_predict(z, y, train, held, *, scaler, seed, C, max_iter, tol, name):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if scaler == "whiten":
        transform = _whitener(z[train])
    else:
        transform = StandardScaler().fit(z[train]).transform
    probe = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, tol=tol, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(transform(z[train]), y[train])
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning(
            "behavioural consistency (%s): lbfgs did not converge in %d iterations", name, max_iter
        )
    return probe.predict(transform(z[held]))


@metric(
    level="function",
    needs_labels=True,
    invariant=TRANSFORMS,
    scalar=lambda X, Y, labels: behavioural_consistency(X, Y, labels),
    notes="Each model gets its own probe on whitened features: an invertible affine map of a "
    "representation only rotates its whitened coordinates, and an L2-penalised logistic "
    "regression with a free intercept is rotation-equivariant, so the predictions, and their "
    "agreement, do not change (the function level's 'any transform preserving the decision "
    "boundary'). With scaler='standard' (the cross-model probe's StandardScaler) rotations and "
    "shears can change the predictions.",
)
def behavioural_consistency(
    X,
    Y,
    labels,
    *,
    seed: int = PROBE_SEED,
    C: float = PROBE_C,
    max_iter: int = PROBE_MAX_ITER,
    tol: float = 1e-8,
    fractions=(0.8, 0.1, 0.1),
    scaler: str = "whiten",
) -> float:
    """Behavioural consistency: exact-match agreement of the two models' own probe predictions.

    The fraction of held-out rows on which a linear probe fitted on X and one fitted on Y
    predict the same label.

    Protocol of the cross-model probe (:func:`hrsa.metrics.function.cross_model_probe`): the
    same stratified 80/10/10 split (:func:`~hrsa.metrics.function.stratified_split`, ``seed``),
    LogisticRegression(C, lbfgs, max_iter, random_state=seed), the scaler fitted on the train
    split; but each model's probe is fitted on its own train rows, and both predict the
    held-out (dev and test) rows. The rows are used as given (the cross-model probe's sentence
    embeddings are L2-normalised upstream). ``scaler="whiten"`` (default) centres and whitens
    with the train covariance, which makes the result invariant to every invertible affine map
    of either representation when the train split has full column rank (n_train > D);
    ``scaler="standard"`` is the cross-model probe's per-feature StandardScaler. ``tol`` is
    tight so that the predictions are those of the optimum, not of where lbfgs stopped.
    """
    x, y = _pair(X, Y, "behavioural_consistency")
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != x.shape[0]:
        raise DataError(
            f"behavioural_consistency: {lab.shape} labels for {x.shape[0]} rows; one label a row"
        )
    if len(np.unique(lab)) < 2:
        raise DataError("behavioural_consistency: needs at least two classes")
    if scaler not in ("whiten", "standard"):
        raise ValueError(
            f"behavioural_consistency: scaler must be 'whiten' or 'standard', got {scaler!r}"
        )
    train, dev, test = stratified_split(lab, seed=seed, fractions=fractions)
    held = np.sort(np.concatenate([dev, test]))
    kw = dict(scaler=scaler, seed=seed, C=C, max_iter=max_iter, tol=tol)
    px = _fit_predict(x, lab, train, held, name="X", **kw)
    py = _fit_predict(y, lab, train, held, name="Y", **kw)
    return float(np.mean(px == py))
