"""Uncertainty of HRSA numbers: bootstrap over sequences and permutation nulls.

Tokens of one sequence are not independent, so confidence intervals resample *sequences* with
replacement (every token of a drawn sequence enters with the sequence's multiplicity as its
weight) and recompute the statistic; the interval (:func:`bootstrap_interval`) is the
percentile spread of the replicates placed around the estimate.
The permutation null shuffles the rows of one model (breaking the token correspondence while
keeping each model's geometry) and recomputes the statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..config import schema_default
from ..errors import DataError, config_error
from .geometry import cka_from_terms, jaccard_rows
from .representation import correlation_from_terms, procrustes_from_cross
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


def bootstrap_replicates(
    weights: torch.Tensor,
    jaccard: dict[int, torch.Tensor],
    xc: torch.Tensor,
    yc: torch.Tensor,
    constant_x: torch.Tensor,
    constant_y: torch.Tensor,
    *,
    with_h_inv: bool = False,
) -> BootstrapReplicates:
    """Replicates of the bootstrap over sequences of one hidden state.

    ``weights``: (replicates, n) per-row multiplicities (:func:`sequence_weights`) as fp64, on
    the device of ``xc``. ``jaccard``: per k, the (n,) per-row Jaccard index of the two models'
    k-NN sets (a replicate's k-NN overlap is its weighted mean; the neighbour sets are not
    recomputed). ``xc``, ``yc``: the rows centred on the unweighted sample (:func:`centred`);
    ``constant_x``/``constant_y``: the features left out of dimension-wise correlation. Linear
    CKA, dimension-wise correlation and (``with_h_inv``) H_inv per replicate come from
    :func:`weighted_pair`, NaN where undefined.
    """
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
) -> PermutationNulls:
    """Null distributions of one hidden state with the rows of the second model shuffled.

    ``permutations``/``inverses``: from :func:`row_permutations`, on the device of ``xc``.
    k-NN overlap (when both neighbour sets, k -> (n, k) row indices, are given): the neighbour
    sets are computed once; under a permutation p, row t of Y becomes row p[t], whose
    neighbours are the rows inv[j] for j in the neighbours of p[t]. Linear CKA: the self terms
    are computed once and only the cross product is redone (:func:`permuted_cka`).
    ``undefined(fn, *args)`` calls ``fn`` and returns None where the statistic is undefined
    (NaN in the null); without it a :class:`~hrsa.errors.DataError` propagates.
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
    cka = np.full(n_perm, nan)
    if n_perm:
        n = xc.shape[0]
        sx = _self_terms_from_gram(_weighted_sum_products(xc, xc, None), n)
        sy = _self_terms_from_gram(_weighted_sum_products(yc, yc, None), n)
        call = undefined if undefined is not None else (lambda fn, *args: fn(*args))
        for q in range(n_perm):
            v = call(permuted_cka, xc, yc, permutations[q], sx, sy)
            cka[q] = nan if v is None else v
    return PermutationNulls(knn, cka)
