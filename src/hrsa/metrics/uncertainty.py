"""Uncertainty of HRSA numbers: bootstrap over sequences and permutation nulls.

Tokens of one sequence are not independent, so confidence intervals resample *sequences* with
replacement (every token of a drawn sequence enters with the sequence's multiplicity as its
weight) and recompute the statistic; the interval (:func:`bootstrap_interval`) is the
percentile spread of the replicates placed around the estimate.
The permutation null shuffles the rows of one model (breaking the token correspondence while
keeping each model's geometry) and recomputes the statistic.

All bootstrap replicates of one hidden state are computed together
(:func:`bootstrap_replicates`): linear CKA and dimension-wise correlation from the n x n Gram
matrices of the subsample and per-sequence sums (no D x D product per replicate), H_inv from
one cross product per replicate and a mostly-fp32 polar factor
(:func:`~hrsa.metrics.representation.polar_factor`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..config import schema_default
from ..errors import DataError, config_error
from .geometry import cka_from_terms, jaccard_rows
from .representation import (
    correlation_from_terms,
    inverse_row_entropy,
    polar_factor,
    procrustes_from_cross,
)
from .streaming import DEFAULT_CHUNK_SIZE, Moments, SelfTerms

#: the interval's default coverage: the schema's ``hrsa.ci`` (the schema owns every default)
CI = schema_default("hrsa.ci")


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval (None where not computable)."""

    value: float
    ci_low: float | None
    ci_high: float | None
    n_replicates: int

    def as_dict(self) -> dict:
        return {
            "value": _none_if_nan(self.value),
            "ci_low": _none_if_nan(self.ci_low),
            "ci_high": _none_if_nan(self.ci_high),
        }


def _none_if_nan(v):
    return None if v is None or not np.isfinite(v) else float(v)


def percentile_interval(replicates, ci: float = CI) -> tuple[float | None, float | None]:
    """Central ``ci`` percentile interval of the finite replicates (None, None if none)."""
    if not 0 < ci < 1:
        raise config_error("hrsa.ci", f"must be in (0, 1), got {ci}")
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return None, None
    lo, hi = np.quantile(r, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(lo), float(hi)


def permutation_p_value(null, observed: float) -> float | None:
    """One-sided p-value (1 + #{null >= observed}) / (1 + n): the chance of a similarity at
    least this high with the token correspondence destroyed."""
    null = np.asarray(null, dtype=np.float64)
    if null.size == 0 or not np.isfinite(observed):
        return None
    return float((1 + np.sum(null >= observed)) / (1 + null.size))


def sequence_weights(sequence_of_row, n_sequences: int, n_replicates: int, seed) -> np.ndarray:
    """(n_replicates, n_rows) token weights of a bootstrap over sequences: each replicate draws
    ``n_sequences`` sequences with replacement; a token's weight is its sequence's count."""
    seq = np.asarray(sequence_of_row, dtype=np.int64)
    if n_sequences < 2:
        raise DataError(f"a bootstrap over sequences needs at least 2 sequences, got {n_sequences}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(
        n_sequences, np.full(n_sequences, 1.0 / n_sequences), size=n_replicates
    )
    return counts[:, seq].astype(np.float64)


def bootstrap_interval(
    value: float, replicates, ci: float = CI
) -> tuple[float | None, float | None]:
    """The ``ci`` percentile interval of the replicates' deviations from their median, placed
    around ``value``: [value + q_lo - m, value + q_hi - m].

    It keeps the spread and skew of the bootstrap distribution and always contains the
    estimate. Plain percentile intervals can miss the estimate when the statistic is biased
    under resampling (duplicated sequences add noise, and noise lowers H_inv and k-NN overlap
    systematically); this interval does not correct that bias, it reports the sampling spread.
    """
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0 or value is None or not np.isfinite(value):
        return None, None
    lo, hi = percentile_interval(r, ci)
    med = float(np.median(r))
    return float(value + lo - med), float(value + hi - med)


def bootstrap_over_sequences(
    statistic: Callable[[np.ndarray], float],
    sequence_of_row,
    n_sequences: int | None = None,
    *,
    n_replicates: int = 50,
    ci: float = CI,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval (:func:`bootstrap_interval`) of ``statistic(weights)`` over
    sequences; ``weights`` are per-row multiplicities, all ones giving the in-sample value."""
    seq = np.asarray(sequence_of_row, dtype=np.int64)
    n_seq = int(seq.max()) + 1 if n_sequences is None else n_sequences
    value = float(statistic(np.ones(seq.size)))
    weights = sequence_weights(seq, n_seq, n_replicates, seed)
    reps = [float(statistic(w)) if w.sum() > 0 else np.nan for w in weights]
    lo, hi = bootstrap_interval(value, reps, ci)
    return Interval(value, lo, hi, n_replicates)


# ---------------------------------------------------------------------------------------------
# Weighted (bootstrap) and permuted versions of the pair statistics, on in-memory row samples.
# ---------------------------------------------------------------------------------------------


def centred(x: torch.Tensor, dtype=torch.float32) -> tuple[torch.Tensor, Moments]:
    """Centre an in-memory (n, D) tensor with its fp64 mean (hi + lo subtraction)."""
    mean = x.sum(0, dtype=torch.float64) / x.shape[0]
    xd = x.to(dtype)
    mom = Moments(x.shape[0], mean, xd.amin(0) == xd.amax(0), dtype)
    return mom.centre_(x.to(dtype).clone()), mom


def _weighted_sum_products(
    a: torch.Tensor, b: torch.Tensor, w: torch.Tensor | None, chunk: int = DEFAULT_CHUNK_SIZE
) -> torch.Tensor:
    """sum_t w_t a_t b_t^T with fp32 (or fp64) products per chunk, fp64 across chunks."""
    out = torch.zeros(a.shape[1], b.shape[1], dtype=torch.float64, device=a.device)
    for s in range(0, a.shape[0], chunk):
        bs = b[s : s + chunk]
        if w is not None:
            bs = bs * w[s : s + chunk, None].to(bs.dtype)
        out += a[s : s + chunk].T @ bs
    return out


def _self_terms_from_gram(gram: torch.Tensor, n: int) -> SelfTerms:
    nan = float("nan")
    return SelfTerms(
        n,
        gram.diagonal().clone(),
        float(gram.square().sum()),
        float(gram.diagonal().sum()),
        torch.zeros(gram.shape[0], dtype=torch.float64, device=gram.device),
        nan,
        nan,
    )


@dataclass
class WeightedPair:
    """Linear CKA, dimension-wise correlation and (optionally) H_inv of a weighted sample."""

    linear_cka: float
    dimension_wise_correlation: float
    h_inv: float | None


def weighted_pair(
    xc: torch.Tensor,
    yc: torch.Tensor,
    w: torch.Tensor | None,
    constant_x: torch.Tensor,
    constant_y: torch.Tensor,
    *,
    with_h_inv: bool = False,
) -> WeightedPair:
    """Statistics of the sample where row t enters w_t times (``w`` None: once). ``xc``, ``yc``
    are centred on the unweighted sample; they are re-centred on the weighted mean (a small
    correction) before the products."""
    n = xc.shape[0]
    if w is not None:
        w64 = w.to(xc.device, torch.float64)
        total = float(w64.sum())
        xc = xc - ((w64 @ xc.to(torch.float64)) / total).to(xc.dtype)
        yc = yc - ((w64 @ yc.to(torch.float64)) / total).to(yc.dtype)
        w = w64
    gxy = _weighted_sum_products(xc, yc, w)
    gxx = _weighted_sum_products(xc, xc, w)
    gyy = _weighted_sum_products(yc, yc, w)
    sx, sy = _self_terms_from_gram(gxx, n), _self_terms_from_gram(gyy, n)
    nan = float("nan")
    try:
        cka = cka_from_terms(gxy, sx, sy)
    except DataError:
        cka = nan
    try:
        corr = correlation_from_terms(gxy.diagonal(), sx.diag, sy.diag, constant_x, constant_y).mean
    except DataError:
        corr = nan
    h_inv = None
    if with_h_inv:
        try:
            h_inv = procrustes_from_cross(gxy, sx.trace, sy.trace, warn=False).h_inv
        except DataError:
            h_inv = nan
    return WeightedPair(cka, corr, h_inv)


def permuted_cka(
    xc: torch.Tensor, yc: torch.Tensor, permutation: torch.Tensor, sx: SelfTerms, sy: SelfTerms
) -> float:
    """Linear CKA of X against Y with its rows shuffled (the self terms are unchanged)."""
    cross = _weighted_sum_products(xc, yc[permutation], None)
    return cka_from_terms(cross, sx, sy)


# ---------------------------------------------------------------------------------------------
# Bootstrap replicates and permutation nulls of one hidden state on a shared row sample.
# ---------------------------------------------------------------------------------------------


def row_permutations(
    n: int, count: int, seed: int, device=None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``count`` permutations of ``n`` rows drawn from a torch generator seeded with ``seed``
    (drawn on the CPU, so they do not depend on the device), moved to ``device``, and their
    inverses."""
    gen = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(n, generator=gen) for _ in range(count)]
    perms = [p.to(device) for p in perms]
    return perms, [torch.argsort(p) for p in perms]


@dataclass
class BootstrapReplicates:
    """Bootstrap-over-sequences replicates of one hidden state's statistics, one entry per
    replicate. ``knn`` maps k to the replicates of k-NN overlap (only the k given)."""

    knn: dict[int, np.ndarray]
    linear_cka: np.ndarray
    dimension_wise_correlation: np.ndarray
    h_inv: np.ndarray | None


#: row blocks of the n x n Gram matrices hold about this many entries (fp64 working copies),
#: and at least BLOCK_MIN_ROWS rows
BLOCK_ELEMENTS = 1 << 20
BLOCK_MIN_ROWS = 128
#: per-group D x D cross products (fp32) for the H_inv replicates if they fit in this many bytes
GROUP_BYTES = 1 << 28


def bootstrap_replicates(
    weights: torch.Tensor,
    jaccard: dict[int, torch.Tensor],
    xc: torch.Tensor,
    yc: torch.Tensor,
    constant_x: torch.Tensor,
    constant_y: torch.Tensor,
    *,
    with_h_inv: bool = False,
    procrustes: str = "polar",
    block_elements: int = BLOCK_ELEMENTS,
    group_bytes: int = GROUP_BYTES,
) -> BootstrapReplicates:
    """Replicates of the bootstrap over sequences of one hidden state, all at once.

    ``weights``: (replicates, n) per-row multiplicities (:func:`sequence_weights`) as fp64, on
    the device of ``xc``. ``jaccard``: per k, the (n,) per-row Jaccard index of the two models'
    k-NN sets (a replicate's k-NN overlap is its weighted mean; the neighbour sets are not
    recomputed). ``xc``, ``yc``: the rows centred on the unweighted sample (:func:`centred`);
    ``constant_x``/``constant_y``: the features left out of dimension-wise correlation.

    The statistics are those of :func:`weighted_pair` per replicate (the weighted sample
    re-centred on its weighted mean), NaN where undefined, computed without forming a D x D
    product per replicate (:func:`_replicate_terms`): linear CKA from the Gram matrices of the
    n rows (||Xc^T W Yc||_F^2 = w^T (K o L) w), dimension-wise correlation from per-group
    column sums, H_inv (``with_h_inv``) from one cross product per replicate (per-group cross
    products combined where they fit in ``group_bytes``) and :func:`polar_factor`
    (``procrustes`` "polar": mostly-fp32 scaled Newton, the fp64 SVD where ill-conditioned;
    1.7x faster than LAPACK's fp64 SVD on one CPU core at D = 512, and GEMM/inverse-bound
    on a GPU) or the fp64 SVD ("svd"). Equal to an fp64 evaluation of the same formulas to
    ~1e-10 (CKA, correlation) and ~1e-8 (H_inv), and to :func:`bootstrap_replicates_reference`
    (one replicate at a time, fp32 products) to within the reference's own fp32 error
    (measured <= 1.5e-6 with a massive-activation feature, ~1e-8 otherwise).
    """
    b = weights.shape[0]
    knn = {k: ((weights @ jac) / weights.sum(1)).cpu().numpy() for k, jac in jaccard.items()}
    terms = _replicate_terms(weights, xc, yc, block_elements)
    cka = terms.linear_cka().cpu().numpy()
    same = xc.shape[1] == yc.shape[1]
    if same:
        corr = terms.correlation(constant_x, constant_y).cpu().numpy()
    else:
        corr = np.full(b, float("nan"))
    h_inv = None
    if procrustes not in ("polar", "svd"):
        raise ValueError(f"procrustes must be 'polar' or 'svd', got {procrustes!r}")
    if with_h_inv:
        h_inv = np.full(b, float("nan"))
        if same:
            for r, gxy in _replicate_crosses(terms, xc, yc, group_bytes):
                tx, ty = float(terms.dxx[r].sum()), float(terms.dyy[r].sum())
                if not (tx > 0 and ty > 0):
                    continue  # Procrustes undefined: NaN, as in weighted_pair
                if procrustes == "polar":
                    h_inv[r] = inverse_row_entropy(polar_factor(gxy).orthogonal_map)
                else:
                    h_inv[r] = procrustes_from_cross(gxy, tx, ty, warn=False).h_inv
    return BootstrapReplicates(knn, cka, corr, h_inv)


def bootstrap_replicates_reference(
    weights: torch.Tensor,
    jaccard: dict[int, torch.Tensor],
    xc: torch.Tensor,
    yc: torch.Tensor,
    constant_x: torch.Tensor,
    constant_y: torch.Tensor,
    *,
    with_h_inv: bool = False,
) -> BootstrapReplicates:
    """:func:`bootstrap_replicates` one replicate at a time through :func:`weighted_pair`
    (three D x D products and an fp64 SVD per replicate): the reference it is tested against."""
    b = weights.shape[0]
    knn = {k: ((weights @ jac) / weights.sum(1)).cpu().numpy() for k, jac in jaccard.items()}
    cka, corr = np.full(b, float("nan")), np.full(b, float("nan"))
    h_inv = np.full(b, float("nan")) if with_h_inv else None
    for r in range(b):
        rep = weighted_pair(xc, yc, weights[r], constant_x, constant_y, with_h_inv=with_h_inv)
        cka[r] = rep.linear_cka
        corr[r] = rep.dimension_wise_correlation
        if h_inv is not None:
            h_inv[r] = rep.h_inv
    return BootstrapReplicates(knn, cka, corr, h_inv)


@dataclass
class ReplicateTerms:
    """Per replicate r (weights w_r, total s_r): the weighted-centred statistics of
    :func:`weighted_pair`, all fp64. ``dxy``, ``dxx``, ``dyy`` (B, D): diagonals of the
    weighted-centred cross and self products; ``fxy``, ``fxx``, ``fyy`` (B,): their squared
    Frobenius norms; ``mx``, ``my`` (B, D): Xc^T w_r, Yc^T w_r; ``groups`` (B, G) the distinct
    weight columns and ``group_of_row`` (n,) each row's column."""

    total: torch.Tensor
    mx: torch.Tensor
    my: torch.Tensor
    dxy: torch.Tensor | None
    dxx: torch.Tensor
    dyy: torch.Tensor
    fxy: torch.Tensor
    fxx: torch.Tensor
    fyy: torch.Tensor
    groups: torch.Tensor
    group_of_row: torch.Tensor

    def linear_cka(self) -> torch.Tensor:
        den = self.fxx * self.fyy
        ok = (self.fxx > 0) & (self.fyy > 0) & (self.total > 0)
        return torch.where(ok, self.fxy / torch.sqrt(den.clamp_min(0)), float("nan"))

    def correlation(self, constant_x: torch.Tensor, constant_y: torch.Tensor) -> torch.Tensor:
        """Mean over the kept features of rho_j (the rules of :func:`correlation_from_terms`)."""
        const = (constant_x | constant_y).to(self.dxx.device)
        keep = ~const[None, :] & (self.dxx > 0) & (self.dyy > 0)
        rho = torch.where(keep, self.dxy / torch.sqrt((self.dxx * self.dyy).clamp_min(0)), 0.0)
        n_keep = keep.sum(1)
        mean = rho.sum(1) / n_keep.clamp_min(1)
        return torch.where((n_keep > 0) & (self.total > 0), mean, float("nan"))


def _replicate_terms(
    weights: torch.Tensor, xc: torch.Tensor, yc: torch.Tensor, block_elements: int = BLOCK_ELEMENTS
) -> ReplicateTerms:
    """The statistics of every replicate without a D x D product per replicate.

    Rows whose weights agree in every replicate (the rows of one sequence) form a group:
    ``groups`` (B, G) are the distinct weight columns. With s = sum w, mx = Xc^T w,
    my = Yc^T w and the weighted-centred cross product G_w = Xc^T W Yc - mx my^T / s:

    * diag(G_w) = groups @ (per-group column sums of Xc o Yc) - mx o my / s (fp64);
    * ||G_w||_F^2 = w^T (K o L) w - (2 / s) sum_t w_t a_t b_t + |mx|^2 |my|^2 / s^2, with the
      Gram matrices K = Xc Xc^T, L = Yc Yc^T of the n rows, a = Xc mx, b = Yc my. The n x n
      products are formed in blocks of about ``block_elements`` entries (fp32 GEMMs, one
      block triangle, mirrored), multiplied in fp64 and summed over each group's rows before
      the replicate weights apply: n^2 D + n^2 + n G B operations for all B replicates
      instead of 3 B n D^2.
    """
    dev = xc.device
    w = weights.to(dev, torch.float64)
    b, n = w.shape
    if xc.shape[0] != n or yc.shape[0] != n:
        raise DataError(f"bootstrap weights cover {n} rows, the sample has {xc.shape[0]}")
    groups, inv = torch.unique(w, dim=1, return_inverse=True)
    g = groups.shape[1]
    total = w.sum(1)
    same = xc.shape[1] == yc.shape[1]
    # per-group column sums of Xc, Yc and their squares / products (fp64, row chunks)
    sums = {
        key: torch.zeros(g, v.shape[1], dtype=torch.float64, device=dev)
        for key, v in (("x", xc), ("y", yc), ("xx", xc), ("yy", yc), ("xy", xc))
        if key != "xy" or same
    }
    chunk = max(1, block_elements // max(xc.shape[1], yc.shape[1]))
    for c0 in range(0, n, chunk):
        ic = inv[c0 : c0 + chunk]
        x64, y64 = xc[c0 : c0 + chunk].to(torch.float64), yc[c0 : c0 + chunk].to(torch.float64)
        sums["x"].index_add_(0, ic, x64)
        sums["y"].index_add_(0, ic, y64)
        sums["xx"].index_add_(0, ic, x64.square())
        sums["yy"].index_add_(0, ic, y64.square())
        if same:
            sums["xy"].index_add_(0, ic, x64 * y64)
    mx, my = groups @ sums["x"], groups @ sums["y"]
    inv_total = torch.where(total > 0, 1.0 / total, float("nan"))
    dxy = groups @ sums["xy"] - mx * my * inv_total[:, None] if same else None
    dxx = groups @ sums["xx"] - mx.square() * inv_total[:, None]
    dyy = groups @ sums["yy"] - my.square() * inv_total[:, None]
    del sums
    # sum_t w_t a_t b_t, a = Xc mx, b = Yc my, per replicate (fp64, row chunks)
    cab = torch.zeros(3, b, dtype=torch.float64, device=dev)
    for c0 in range(0, n, chunk):
        a = xc[c0 : c0 + chunk].to(torch.float64) @ mx.T  # (rows, B)
        bb = yc[c0 : c0 + chunk].to(torch.float64) @ my.T
        wt = w[:, c0 : c0 + chunk].T
        cab[0] += (wt * a * bb).sum(0)
        cab[1] += (wt * a * a).sum(0)
        cab[2] += (wt * bb * bb).sum(0)
    mx2, my2 = mx.square().sum(1), my.square().sum(1)
    # w^T (K o L) w, w^T (K o K) w, w^T (L o L) w: column blocks of K and L from row s0 down
    t = torch.zeros(3, b, dtype=torch.float64, device=dev)
    rows = min(n, max(BLOCK_MIN_ROWS, block_elements // n))
    for s0 in range(0, n, rows):
        s1 = min(s0 + rows, n)
        k = (xc[s0:] @ xc[s0:s1].T).to(torch.float64)  # (n - s0, rows): columns s0:s1 of K
        l_ = (yc[s0:] @ yc[s0:s1].T).to(torch.float64)
        idx_in, idx_out = inv[s0:s1], inv[s1:]
        w_blk = w[:, s0:s1]
        for q, (u, v) in enumerate(((k, l_), (k, k), (l_, l_))):
            h = u * v  # one Hadamard product at a time: K o L, K o K, L o L
            hg = torch.zeros(g, s1 - s0, dtype=torch.float64, device=dev)
            hg.index_add_(0, idx_in, h[: s1 - s0])
            hg.index_add_(0, idx_out, h[s1 - s0 :], alpha=2.0)  # the lower triangle, mirrored
            t[q] += ((groups @ hg) * w_blk).sum(1)
            del h
        del k, l_
    it2 = inv_total.square()
    fxy = t[0] - 2.0 * inv_total * cab[0] + mx2 * my2 * it2
    fxx = t[1] - 2.0 * inv_total * cab[1] + mx2 * mx2 * it2
    fyy = t[2] - 2.0 * inv_total * cab[2] + my2 * my2 * it2
    return ReplicateTerms(total, mx, my, dxy, dxx, dyy, fxy, fxx, fyy, groups, inv)


def _replicate_crosses(terms: ReplicateTerms, xc: torch.Tensor, yc: torch.Tensor, group_bytes: int):
    """Yield (r, G_w) for every replicate with positive total weight: the weighted-centred
    D x D cross product Xc^T W_r Yc - mx my^T / s (fp64). Xc^T W_r Yc is the groups' weights
    times the per-group products X_g^T Y_g (fp32, formed once) where those fit in
    ``group_bytes`` and the groups are at most half the rows; otherwise one fp32 product per
    replicate (row chunks, fp64 sums)."""
    dev = xc.device
    groups, inv = terms.groups, terms.group_of_row
    b, g = groups.shape
    n, d = xc.shape
    use_groups = g * d * d * 4 <= group_bytes and 2 * g <= n
    if use_groups:
        order = torch.argsort(inv, stable=True)
        counts = torch.bincount(inv, minlength=g).tolist()
        per_group = torch.empty(g, d, d, dtype=torch.float32, device=dev)
        start = 0
        for q, c in enumerate(counts):
            idx = order[start : start + c]
            torch.matmul(xc[idx].T, yc[idx], out=per_group[q])
            start += c
        flat = per_group.view(g, d * d)
        g32 = groups.to(torch.float32)
    batch = max(1, min(b, group_bytes // max(1, 8 * d * d)))
    for r0 in range(0, b, batch):
        raws = (g32[r0 : r0 + batch] @ flat).view(-1, d, d) if use_groups else None
        for r in range(r0, min(r0 + batch, b)):
            if not float(terms.total[r]) > 0:
                continue
            if use_groups:
                raw = raws[r - r0].to(torch.float64)
            else:
                raw = _weighted_sum_products(xc, yc, groups[r, inv].to(xc.dtype))
            yield r, raw - torch.outer(terms.mx[r], terms.my[r]) / terms.total[r]


@dataclass
class PermutationNulls:
    """Permutation nulls of one hidden state, one entry per permutation. ``knn`` maps k to the
    null k-NN overlaps (empty when no neighbour sets were given)."""

    knn: dict[int, np.ndarray]
    linear_cka: np.ndarray


def permutation_nulls(
    permutations: Sequence[torch.Tensor],
    inverses: Sequence[torch.Tensor],
    xc: torch.Tensor,
    yc: torch.Tensor,
    neighbours_x: dict[int, torch.Tensor] | None = None,
    neighbours_y: dict[int, torch.Tensor] | None = None,
    *,
    undefined: Callable | None = None,
    cka: bool = True,
) -> PermutationNulls:
    """Null distributions of one hidden state with the rows of the second model shuffled.

    ``permutations``/``inverses``: from :func:`row_permutations`, on the device of ``xc``.
    k-NN overlap (when both neighbour sets, k -> (n, k) row indices, are given): the neighbour
    sets are computed once; under a permutation p, row t of Y becomes row p[t], whose
    neighbours are the rows inv[j] for j in the neighbours of p[t]. Linear CKA: the self terms
    are computed once and only the cross product is redone (:func:`permuted_cka`).
    ``undefined(fn, *args)`` calls ``fn`` and returns None where the statistic is undefined
    (NaN in the null); without it a :class:`~hrsa.errors.DataError` propagates. ``cka=False``
    leaves the CKA null NaN (linear CKA not selected, ``hrsa.metrics``).
    """
    nan = float("nan")
    n_perm = len(permutations)
    knn: dict[int, np.ndarray] = {}
    if neighbours_x is not None and neighbours_y is not None:
        for k, nx in neighbours_x.items():
            ny = neighbours_y[k]
            knn[k] = np.full(n_perm, nan)
            for q in range(n_perm):
                knn[k][q] = float(jaccard_rows(nx, inverses[q][ny[permutations[q]]]).mean())
    cka_null = np.full(n_perm, nan)
    if n_perm and cka:
        n = xc.shape[0]
        sx = _self_terms_from_gram(_weighted_sum_products(xc, xc, None), n)
        sy = _self_terms_from_gram(_weighted_sum_products(yc, yc, None), n)
        call = undefined if undefined is not None else (lambda fn, *args: fn(*args))
        for q in range(n_perm):
            v = call(permuted_cka, xc, yc, permutations[q], sx, sy)
            cka_null[q] = nan if v is None else v
    return PermutationNulls(knn, cka_null)
