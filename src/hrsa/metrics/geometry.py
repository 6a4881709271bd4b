"""Geometry-level metrics (paper 3.3, Appendix B.2): the shape of the token manifold, up to
rotation and isotropic scale. Global shape: linear CKA (and the debiased and RBF variants of
Table 8); local shape: k-NN overlap."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import numpy as np
import torch

from ..errors import DataError
from .registry import metric
from .streaming import (
    DEFAULT_CHUNK_SIZE,
    CrossTerms,
    SelfTerms,
    as_source,
    check_pair,
    compute_moments,
    pair_statistics,
    resolve_device,
)

log = logging.getLogger("hrsa.metrics")

#: similarity blocks of the k-NN search hold at most this many fp32 entries: 8 MiB on CPU (a
#: block that stays in cache is faster to search), 128 MiB on GPUs
SIMILARITY_BLOCK_ELEMENTS = {"cpu": 1 << 21, "cuda": 1 << 25}


def _block_elements(device: torch.device) -> int:
    return SIMILARITY_BLOCK_ELEMENTS.get(device.type, 1 << 21)


def cka_from_terms(cross: torch.Tensor, sx: SelfTerms, sy: SelfTerms, what: str = "X, Y") -> float:
    """||C||_F^2 / (||Gx||_F ||Gy||_F) with C = Xc^T Yc, Gx = Xc^T Xc, Gy = Yc^T Yc."""
    if sx.frob_sq <= 0 or sy.frob_sq <= 0:
        raise DataError(
            f"{what}: a representation has zero variance (every feature constant); CKA is undefined"
        )
    return float(cross.square().sum()) / math.sqrt(sx.frob_sq * sy.frob_sq)


def debiased_cka_from_terms(
    ct: CrossTerms, n: int, sx: SelfTerms, sy: SelfTerms, what: str = "X, Y"
) -> float:
    """HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)); never clamped."""
    if n < 4:
        raise DataError(f"{what}: debiased CKA needs at least 4 rows (tokens), got {n}")
    if sx.trace <= 0 or sy.trace <= 0:
        raise DataError(
            f"{what}: a representation has zero variance (every feature constant); "
            "debiased CKA is undefined"
        )
    denom = sx.hsic_u * sy.hsic_u
    if not denom > 0:
        raise DataError(
            f"{what}: the debiased self-HSIC is not positive ({sx.hsic_u:.3g}, "
            f"{sy.hsic_u:.3g}); debiased CKA is undefined for these data"
        )
    return ct.hsic_u(n, sx, sy) / math.sqrt(denom)


_GEOMETRY = dict(
    invariant=("rotation", "permutation", "isotropic_scale", "translation"),
    variant=("anisotropic_scale", "general_linear"),
)


@metric(level="geometry", **_GEOMETRY)
def linear_cka(X, Y, *, chunk_size: int = DEFAULT_CHUNK_SIZE, device=None) -> float:
    """Linear CKA (paper Eq. 3-4): ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), Xc, Yc
    column-centred.

    Equal to HSIC(K_X, K_Y) / sqrt(HSIC(K_X, K_X) HSIC(K_Y, K_Y)) with linear kernels, but
    computed in feature space (D x D), never through an N x N Gram matrix.
    """
    st = pair_statistics(X, Y, device=device, chunk_size=chunk_size)
    return cka_from_terms(st.cross.cross, st.x_self, st.y_self)


@metric(level="geometry", **_GEOMETRY)
def debiased_cka(X, Y, *, chunk_size: int = DEFAULT_CHUNK_SIZE, device=None) -> float:
    """Debiased linear CKA: CKA with the unbiased HSIC estimator of Song et al. (2012),

    HSIC_u(K, L) = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)),

    K~ = Xc Xc^T with its diagonal zeroed, evaluated in feature space from ||Xc^T Yc||_F^2, the
    row norms and column sums. Not clamped: it can be slightly negative for unrelated inputs.
    """
    st = pair_statistics(X, Y, device=device, chunk_size=chunk_size)
    return debiased_cka_from_terms(st.cross, st.n, st.x_self, st.y_self)


def _rbf_gram(x: torch.Tensor, threshold: float, name: str) -> torch.Tensor:
    """exp(-d^2 / (2 t^2 median(d^2))), median over all N^2 entries (Kornblith et al. 2019)."""
    x = x - x.mean(0, keepdim=True)
    sq = x.square().sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_(min=0.0)
    d2.fill_diagonal_(0.0)
    flat, m = d2.flatten(), d2.numel()
    med = float(flat.kthvalue((m + 1) // 2).values)
    if m % 2 == 0:  # the mean of the two middle values, as np.median
        med = 0.5 * (med + float(flat.kthvalue(m // 2 + 1).values))
    if not med > 0:
        raise DataError(
            f"{name}: the median squared distance is zero (most rows identical); "
            "the RBF bandwidth is undefined"
        )
    return torch.exp(-d2 / (2.0 * threshold**2 * med))


def _double_centre(k: torch.Tensor) -> torch.Tensor:
    k = k - k.mean(0, keepdim=True)
    return k - k.mean(1, keepdim=True)


@metric(level="geometry", defaults={"threshold": 0.5}, **_GEOMETRY)
def rbf_cka(X, Y, threshold: float = 0.5, *, max_rows: int = 8192, device=None) -> float:
    """RBF-kernel CKA (Table 8 alternative): <HKH, HLH>_F / (||HKH||_F ||HLH||_F) with
    K_ij = exp(-||x_i - x_j||^2 / (2 t^2 median(d^2))), t = ``threshold``.

    Needs the N x N kernels (computed in fp64), so N is capped by ``max_rows``; subsample first.
    """
    sx, sy = as_source(X, "X"), as_source(Y, "Y")
    check_pair(sx, sy)
    if sx.n_rows > max_rows:
        raise DataError(
            f"rbf_cka builds N x N kernels; N = {sx.n_rows} > max_rows = {max_rows}. "
            "Subsample the rows first or raise max_rows."
        )
    if not threshold > 0:
        raise DataError(f"rbf_cka: threshold must be > 0, got {threshold}")
    dev = resolve_device(device, sx, sy)
    for s in (sx, sy):
        compute_moments(s, dev)  # NaN/Inf and size checks
    x = sx.gather(np.arange(sx.n_rows), DEFAULT_CHUNK_SIZE).to(dev, torch.float64)
    y = sy.gather(np.arange(sy.n_rows), DEFAULT_CHUNK_SIZE).to(dev, torch.float64)
    kx = _double_centre(_rbf_gram(x, threshold, "X"))
    ky = _double_centre(_rbf_gram(y, threshold, "Y"))
    nx, ny = torch.linalg.matrix_norm(kx), torch.linalg.matrix_norm(ky)
    return float((kx * ky).sum() / (nx * ny))


# ---------------------------------------------------------------------------------------------
# k-NN overlap
# ---------------------------------------------------------------------------------------------


def _normalised_rows(z: torch.Tensor, name: str) -> torch.Tensor:
    norms = torch.linalg.vector_norm(z, dim=1)
    zero = (norms == 0).nonzero()
    if zero.numel():
        raise DataError(
            f"{name}: row {int(zero[0])} is the zero vector; its cosine similarity is undefined"
        )
    if not bool(torch.isfinite(norms).all()):
        raise DataError(f"{name}: NaN or Inf in the rows; cosine similarity is undefined")
    return z / norms[:, None]


def _check_ks(ks: Iterable[int], n: int, name: str = "") -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise DataError(f"{name}k-NN: k must be >= 1, got {ks}")
    if ks[-1] > n - 1:
        raise DataError(
            f"{name}k-NN with k = {ks[-1]} needs more than k rows (self excluded); "
            f"only {n} rows. Lower k or use more tokens."
        )
    return ks


def _monotone_keys(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering (fp32 value descending, index ascending) totally: the float bits made
    monotone in the high 32 bits, the complemented index in the low 32 bits."""
    bits = values.contiguous().view(torch.int32)
    keys = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)
    keys.bitwise_left_shift_(32)
    return keys.bitwise_or_(0xFFFFFFFF - index)


#: width of the column blocks whose maxima prune the exact top-k search, and the number of
#: columns from which pruning pays off (measured on CPU: slower below ~20k columns)
_PRUNE_BLOCK = 32
_PRUNE_MIN_COLUMNS = 20000


def _float_top(sim: torch.Tensor, kk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kk largest values of each row (sorted) and their columns, exactly.

    With many columns, only the kk column blocks with the largest maxima are searched: every
    column outside them is <= the kk-th largest block maximum <= the kk-th largest value, so
    the kk values found are the true ones (ties at the last place are settled by the caller).
    """
    c, n = sim.shape
    n_blocks = n // _PRUNE_BLOCK
    if n < _PRUNE_MIN_COLUMNS or n_blocks < 4 * kk:
        return torch.topk(sim, kk, dim=1, largest=True, sorted=True)
    width = n_blocks * _PRUNE_BLOCK
    block_max = sim[:, :width].reshape(c, n_blocks, _PRUNE_BLOCK).amax(2)
    if width < n:  # the ragged tail is one more candidate block
        block_max = torch.cat([block_max, sim[:, width:].amax(1, keepdim=True)], 1)
    best = torch.topk(block_max, kk, dim=1, sorted=False).indices
    cols = best[:, :, None] * _PRUNE_BLOCK + torch.arange(_PRUNE_BLOCK, device=sim.device)
    cols = cols.reshape(c, -1)
    beyond = cols >= n  # past the end of the ragged tail block
    cand = sim.gather(1, cols.clamp(max=n - 1)).masked_fill_(beyond, -math.inf)
    vals, pos = torch.topk(cand, kk, dim=1, largest=True, sorted=True)
    return vals, cols.gather(1, pos)


def _tied_rows(vals: torch.Tensor, ks: list[int], kk: int) -> torch.Tensor:
    tied = torch.zeros(vals.shape[0], dtype=torch.bool, device=vals.device)
    for k in ks:
        if k < kk:
            tied |= vals[:, k - 1] == vals[:, k]
    return tied.nonzero().flatten()


def _ranked_top(sim: torch.Tensor, ks: list[int]) -> torch.Tensor:
    """Columns of the top ``kmax + 1`` values of each row (self already at -inf), ranked so
    that for every k in ``ks`` the first k are the exact top-k set with ties at the k-th place
    going to the lower column index.

    A float top-k settles every row whose k-th and (k+1)-th values differ; rows with a tie at
    some k are redone with a top-k over keys that order (value, -column) totally.
    """
    n = sim.shape[1]
    sim += 0.0  # -0.0 -> +0.0, so equal similarities have equal bits
    kk = min(ks[-1] + 1, n - 1)
    vals, idx = _float_top(sim, kk)
    amb = _tied_rows(vals, ks, kk)
    if amb.numel():
        cols = torch.arange(n, device=sim.device)
        idx[amb] = torch.topk(_monotone_keys(sim[amb], cols), kk, dim=1).indices
    return idx


def _top_sets(sim: torch.Tensor, ks: list[int]) -> dict[int, torch.Tensor]:
    """Exact top-k column sets (see :func:`_ranked_top`), each sorted by index."""
    idx = _ranked_top(sim, ks)
    return {k: idx[:, :k].sort(1).values for k in ks}


def nearest_neighbours(
    Z,
    ks: int | Iterable[int],
    *,
    device=None,
    block_rows: int | None = None,
    name: str | None = None,
) -> dict[int, np.ndarray]:
    """Exact cosine k-nearest neighbours of every row among the other rows (self excluded).

    The rows (stored fp16/bf16 upcast to fp32) are L2-normalised in fp64; the neighbour sets are
    those of the fp64 similarities, found at fp32 GEMM cost (see :func:`_neighbours_tensor`),
    also when every row shares a large component and all cosines sit near 1. For each k the set
    is the k largest similarities, ties (equal fp64 values, e.g. duplicate rows) going to the
    lower row index (deterministic). Returns ``{k: (N, k) int64 array}`` with each row's
    indices sorted. ``name`` names ``Z`` in errors and warnings (default: its source's name,
    else "Z").
    """
    single = isinstance(ks, int | np.integer)
    src = as_source(Z, name or "Z")
    dev = resolve_device(device, src)
    z = Z if isinstance(Z, torch.Tensor) else src.gather(np.arange(src.n_rows), DEFAULT_CHUNK_SIZE)
    z = z.to(dev, torch.float32)
    res = _neighbours_tensor(
        z, [ks] if single else ks, block_rows=block_rows, name=name or src.name
    )
    res = {k: v.cpu().numpy() for k, v in res.items()}
    return res[int(ks)] if single else res


# --- exact search: shifted fp32 screen, fp64 boundary -----------------------------------------

#: fp64 elements (candidates x features) gathered at once by the boundary re-check
_RECHECK_ELEMENTS = 1 << 21
#: the shifted fp64 rows are kept (not recomputed per re-check) up to this size: rows that
#: nearly repeat (early layers: a token in similar contexts) send millions of pairs to the
#: fp64 re-check, and gathering kept rows is ~2x faster than recomputing them
_KEEP_SHIFTED_BYTES = 256 * 2**20


#: rows whose unit vectors all lie within this (fp64) distance of their mean direction point in
#: one direction: far below the smallest angle between two distinct fp32 directions (~6e-8)
_ONE_DIRECTION = 1e-9


def _first_width(kmax: int) -> int:
    """Candidates (distinct vectors) re-checked in fp64 on the first try; rows whose boundary
    is not settled by them are redone with twice as many."""
    return kmax + 1 + max(8, kmax // 4)


def _extra_input_rounding(device: torch.device) -> float:
    """Unit roundoff of the inputs of an fp32 matmul beyond fp32 itself: 0 at torch's
    'highest' precision, TF32 (2^-11) or bf16 (2^-8) where torch is allowed to use them."""
    precision = torch.get_float32_matmul_precision()
    if precision == "medium":
        return 2.0**-8
    if precision == "high" or (device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32):
        return 2.0**-11
    return 0.0


def _screen_error_factor(dim: int, device: torch.device) -> float:
    """kappa with |fl32(fl32(q) . fl32(d)) - fl64(q . d)| <= kappa sum_i |q_i| |d_i| for fp64
    vectors q, d of ``dim`` features: rounding q and d to the matmul's inputs (relative u
    each, u = 2^-24, plus TF32/bf16 where allowed), the fp32 accumulation in any order
    (gamma_D = D u / (1 - D u), Higham 2002, 3.1) and the fp64 evaluation (gamma_D at 2^-53),
    inflated by 1e-6 for the fp64 arithmetic of the bound itself."""
    u, ut, u64 = 2.0**-24, _extra_input_rounding(device), 2.0**-53
    if dim * u >= 0.5:
        raise DataError(f"k-NN: {dim} features are too many for an fp32 error bound")
    rho = ((1 + u) * (1 + ut)) ** 2 - 1
    gamma32 = dim * u / (1 - dim * u)
    gamma64 = (dim + 2) * u64 / (1 - (dim + 2) * u64)
    return (rho + gamma32 * (1 + rho) + 2 * gamma64) * (1 + 1e-6)


class _ShiftedRows:
    """The distinct rows of a representation, L2-normalised in fp64 (``unit``) and shifted by
    their mean direction c (``shifted`` = unit - c, in fp64; ``d32`` its fp32 copy).

    For a query q, q . (b - c) = q . b - q . c orders the candidates b exactly as q . b does.
    It is evaluated as (q - c) . (b - c) + c . (b - c): the first term one fp32 product of two
    vectors that are small when all rows share a large component (so its rounding error is
    small too), the second a per-candidate constant computed once in fp64 (``cd``, its fp32
    copy ``cd32``, ``cd_max`` = max_b |c . (b - c)|). ``feature_max`` (max_b |b_i - c_i|) and
    ``norm_max`` (max_b ||b - c||) bound sum_i |v_i| |b_i - c_i| for every b at once.
    """

    def __init__(self, uniq: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor, name):
        self.uniq = uniq
        m, dim = uniq.shape
        n = inverse.shape[0]
        step = max(1, _RECHECK_ELEMENTS // max(dim, 1))
        self.norm = torch.cat(
            [
                torch.linalg.vector_norm(uniq[a : a + step].double(), dim=1)
                for a in range(0, m, step)
            ]
        )
        zero = (self.norm == 0).nonzero()
        if zero.numel():
            row = int((inverse == zero[0]).nonzero()[0])
            raise DataError(
                f"{name}: row {row} is the zero vector; its cosine similarity is undefined"
            )
        c = torch.zeros(dim, dtype=torch.float64, device=uniq.device)
        for a in range(0, m, step):
            g = torch.arange(a, min(a + step, m), device=uniq.device)
            c += (self.unit(g) * counts[g, None]).sum(0)
        self.c = c / n
        self.d32 = torch.empty((m, dim), dtype=torch.float32, device=uniq.device)
        self.feature_max = torch.zeros(dim, dtype=torch.float64, device=uniq.device)
        self.norm_max = 0.0
        self.d64 = None
        self.cd = torch.empty(m, dtype=torch.float64, device=uniq.device)
        keep = m * dim * 8 <= _KEEP_SHIFTED_BYTES
        d64 = torch.empty((m, dim), dtype=torch.float64, device=uniq.device) if keep else None
        for a in range(0, m, step):
            g = torch.arange(a, min(a + step, m), device=uniq.device)
            d = self.shifted(g)
            self.d32[a : a + step] = d
            if d64 is not None:
                d64[a : a + step] = d
            self.cd[a : a + step] = d @ self.c
            torch.maximum(self.feature_max, d.abs().amax(0), out=self.feature_max)
            self.norm_max = max(self.norm_max, float(torch.linalg.vector_norm(d, dim=1).max()))
        self.d64 = d64  # the same bits as shifted() computes (same elementwise operations)
        self.cd32 = self.cd.float()
        self.cd_max = float(self.cd.abs().max()) if m else 0.0
        # bound on |c . (b - c)| as an fp64 sum (its rounding error is gamma_D of this)
        self.c_feature_sum = float(self.c.abs() @ self.feature_max)

    def screen(self, q64: torch.Tensor, kappa: float) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 scores t ~ q . (b - c) of the unit queries ``q64`` against every distinct row,
        and per query a bound E with |t - r| <= E for the fp64 value r = sum_i q_i (b_i - c_i)
        as :meth:`_BoundarySearch._exact` computes it.

        t = fl32(fl32(e) . d32 + cd32) with e = q - c. The bound adds up: the product,
        kappa min(sum_i |e_i| max_b |d_i|, ||e|| max_b ||d||) (:func:`_screen_error_factor`);
        the rounding of the fp64 constant to fp32 and its own fp64 error, u max|cd| +
        gamma_D(fp64) sum_i |c_i| max_b |d_i|; the fp32 addition, u (|product| + |cd32|); the
        fp64 evaluation of r, gamma_D(fp64) sum_i |q_i| max_b |d_i|; all inflated by 1e-6."""
        u, dim = 2.0**-24, self.uniq.shape[1]
        gamma64 = (dim + 2) * 2.0**-53 / (1 - (dim + 2) * 2.0**-53)
        e64 = q64 - self.c
        scores = e64.float() @ self.d32.T
        scores += self.cd32
        e_sum = e64.abs() @ self.feature_max
        product = torch.minimum(e_sum, torch.linalg.vector_norm(e64, dim=1) * self.norm_max)
        bound = kappa * product
        bound += u * (e_sum * (1 + kappa) + self.cd_max * (1 + u)) + u * self.cd_max
        bound += gamma64 * (self.c_feature_sum + q64.abs() @ self.feature_max)
        bound *= 1 + 1e-6
        return scores, bound + dim * 2.0**-120  # (the last term: fp32 underflow)

    def unit(self, g: torch.Tensor) -> torch.Tensor:
        """fp64 unit vectors of the distinct rows ``g`` (any index shape); the same
        elementwise operations for every caller, so every caller gets the same bits."""
        return self.uniq[g].double() / self.norm[g].unsqueeze(-1)

    def shifted(self, g: torch.Tensor) -> torch.Tensor:
        if self.d64 is not None:
            return self.d64[g]
        return self.unit(g) - self.c


def _neighbours_tensor(
    z: torch.Tensor, ks, *, block_rows: int | None = None, name: str = "Z"
) -> dict[int, torch.Tensor]:
    """Exact k-NN sets of the rows of ``z`` (see :func:`nearest_neighbours`).

    The search runs over the distinct rows (the embedding layer repeats a vector for every
    occurrence of a token); a group of duplicates enters a neighbour list lowest indices first.
    For a block of query rows q (fp64 unit vectors):

    1. screen: fp32 scores t = fl32(q - c) . fl32(b - c) + c . (b - c) against every distinct
       row b (one fp32 GEMM of small vectors plus a per-row fp64 constant,
       :meth:`_ShiftedRows.screen`); |t - r| <= E_q for the fp64 value r = q . (b - c), where
       E_q is about kappa min(sum_i |q_i - c_i| max_b |b_i - c_i|, ||q - c|| max_b ||b - c||)
       (see :func:`_screen_error_factor`). Shifting the query too makes E_q as small as the
       rows' spread around their shared direction: with a shared offset (all cosines near 1)
       the unshifted query's bound chained every candidate into one cluster and sent every
       pair to the fp64 re-check (52 s instead of 0.5 s per 4096-row hidden state);
    2. boundary: take the w distinct rows of highest t (sorted) and cut them into clusters
       wherever consecutive scores differ by more than 2 E_q: between clusters the fp64 order
       is the order of t. Only a cluster of several distinct rows that some k in ``ks`` cuts
       (the k-th neighbour, self excluded, lies inside it, not at its end) needs r; those
       are recomputed in fp64, and the kmax neighbours ranked by (cluster, r descending,
       row ascending). The rows left out have t <= t_w, so they cannot reach the cluster of
       the kmax-th neighbour unless it runs up to the w-th candidate; then the query is redone
       with 2w candidates (with all m, nothing is left out).
    """
    n = z.shape[0]
    ks = _check_ks(ks, n, f"{name}: ")
    kmax = ks[-1]
    z = z.to(torch.float32)
    finite = torch.isfinite(z).all(1)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0])
        raise DataError(f"{name}: row {row} has NaN or Inf; cosine similarity is undefined")
    uniq, inverse, counts = torch.unique(z, dim=0, return_inverse=True, return_counts=True)
    rows = _ShiftedRows(uniq, inverse, counts, name)
    m, dim, dev = uniq.shape[0], uniq.shape[1], z.device
    if rows.norm_max <= _ONE_DIRECTION:
        log.warning(
            "%s: all %d rows point in one direction (constant input?): every cosine similarity "
            "is the same, so the k-NN sets are the lowest row indices and the k-NN overlap "
            "measures nothing",
            name,
            n,
        )
    search = _BoundarySearch(rows, inverse, counts, kmax, ks, _screen_error_factor(dim, dev))
    step = block_rows or max(1, min(n, _block_elements(dev) // max(m, 1)))
    parts: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for a in range(0, n, step):
        q = torch.arange(a, min(a + step, n), device=dev)
        q64 = rows.unit(inverse[q])
        scores, bound = rows.screen(q64, search.kappa)
        idx = search.resolve(scores, q64, q, bound, _first_width(kmax))
        for k in ks:
            parts[k].append(idx[:, :k].sort(1).values)
    return {k: torch.cat(v) for k, v in parts.items()}


class _BoundarySearch:
    """Step 2 of :func:`_neighbours_tensor` for blocks of query rows."""

    def __init__(self, rows: _ShiftedRows, inverse, counts, kmax: int, ks: list[int], kappa):
        self.rows, self.inverse, self.counts = rows, inverse, counts
        self.kmax, self.ks, self.kappa = kmax, ks, kappa
        self.n, self.m = inverse.shape[0], counts.shape[0]
        self.members = torch.argsort(inverse, stable=True)  # rows grouped, ascending in a group
        self.first = torch.cumsum(counts, 0) - counts
        self.cap = min(kmax + 1, int(counts.max()))  # members of one group ever needed
        self.slot = torch.arange(self.cap, device=inverse.device)

    def resolve(self, scores, q64, q, bound, width: int) -> torch.Tensor:
        """The kmax nearest rows of queries ``q`` ranked by (fp64 value desc, row asc), up to
        the order inside groups of candidates that no k in ``ks`` separates; ``scores`` (fp32)
        and ``bound`` (their error) from the screen."""
        width = min(width, self.m)
        out = torch.empty((len(q), self.kmax), dtype=torch.int64, device=q.device)
        step = max(1, _RECHECK_ELEMENTS // (width * self.cap))
        for a in range(0, len(q), step):
            s = slice(a, a + step)
            vals, cols = _float_top(scores[s], width)
            qs, e = q[s], bound[s]
            # clusters: runs of candidates whose fp32 scores are within 2E of the next one;
            # the fp64 order between clusters is that of the scores
            t = vals.double()
            cid = torch.zeros_like(cols)
            cid[:, 1:] = (t[:, :-1] - t[:, 1:] > 2 * e[:, None]).cumsum(1)
            avail = self.counts[cols] - (cols == self.inverse[qs, None]).long()
            total = avail.cumsum(1)  # neighbours (self excluded) up to each candidate
            settled = total[:, -1] >= self.kmax  # false only with w < m and small groups
            recheck = torch.zeros_like(cid, dtype=torch.bool)
            for k in self.ks:
                # the cluster holding the k-th neighbour; it needs fp64 values when k cuts it
                c_k = cid.gather(1, (total >= k).long().argmax(1, keepdim=True))
                inside = cid == c_k
                last = torch.where(inside, total, 0).amax(1, keepdim=True)
                several = inside.sum(1, keepdim=True) > 1
                recheck |= inside & several & (last > k)
                if k == self.kmax and width < self.m:  # no candidate left out may join it
                    settled &= c_k[:, 0] != cid[:, -1]
            done = settled.nonzero()[:, 0]
            if done.numel():
                out[a + done] = self._expand(
                    cols[done], cid[done], recheck[done], q64[s][done], qs[done]
                )
            redo = (~settled).nonzero()[:, 0]
            if redo.numel():
                out[a + redo] = self.resolve(
                    scores[s][redo], q64[s][redo], qs[redo], e[redo], 2 * width
                )
        return out

    def _exact(self, q64, cols, mask) -> torch.Tensor:
        """fp64 values q . (b - c) where ``mask``, 0 elsewhere."""
        exact = torch.zeros(cols.shape, dtype=torch.float64, device=cols.device)
        pairs = mask.nonzero()
        step = max(1, _RECHECK_ELEMENTS // q64.shape[1])
        for a in range(0, len(pairs), step):
            i, j = pairs[a : a + step].unbind(1)
            exact[i, j] = (self.rows.shifted(cols[i, j]) * q64[i]).sum(1)
        return exact

    def _expand(self, cols, cid, recheck, q64, q) -> torch.Tensor:
        """Candidate groups -> their first members, self excluded, and the kmax smallest keys
        (rank of (cluster, fp64 value), row): ties in value go to the lower row, across groups
        as within one."""
        p, w = cols.shape
        exact = self._exact(q64, cols, recheck)
        order = exact.argsort(dim=1, descending=True, stable=True)
        order = order.gather(1, cid.gather(1, order).argsort(dim=1, stable=True))
        cols, cid, exact = cols.gather(1, order), cid.gather(1, order), exact.gather(1, order)
        rank = torch.zeros_like(cols)
        rank[:, 1:] = ((cid[:, 1:] != cid[:, :-1]) | (exact[:, 1:] != exact[:, :-1])).cumsum(1)
        cand = self.members[(self.first[cols, None] + self.slot).clamp_(max=self.n - 1)]
        ok = self.slot < self.counts[cols, None]
        ok &= cand != q[:, None, None]
        keys = (rank[..., None] * self.n + cand).masked_fill_(~ok, torch.iinfo(torch.int64).max)
        top = torch.topk(keys.reshape(p, -1), self.kmax, dim=1, largest=False, sorted=True)
        return cand.reshape(p, -1).gather(1, top.indices)


# --- the previous fp32 search (baseline of benchmarks/hrsa_engine.py) -------------------------


def _neighbours_fp32(
    z: torch.Tensor, ks, *, block_rows: int | None = None, name: str = "Z"
) -> dict[int, torch.Tensor]:
    """k-NN sets ranked by fp32 products of fp32-normalised rows (the search before issue 11):
    exact for fp32 similarities, ties by row index, but not the fp64 answer when rows share a
    large component. Kept as the baseline that measures the cost of exactness."""
    n = z.shape[0]
    ks = _check_ks(ks, n, f"{name}: ")
    zn = _normalised_rows(z.to(torch.float32), name)
    uniq, inverse, counts = torch.unique(zn, dim=0, return_inverse=True, return_counts=True)
    if uniq.shape[0] <= n // 2:
        return _neighbours_grouped_fp32(zn, uniq, inverse, counts, ks, block_rows)
    rows = block_rows or max(1, min(n, _block_elements(z.device) // max(n, 1)))
    parts: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for a in range(0, n, rows):
        b = min(a + rows, n)
        sim = zn[a:b] @ zn.T
        sim[torch.arange(b - a, device=z.device), torch.arange(a, b, device=z.device)] = -math.inf
        for k, s in _top_sets(sim, ks).items():
            parts[k].append(s)
    return {k: torch.cat(v) for k, v in parts.items()}


def _neighbours_grouped_fp32(zn, uniq, inverse, counts, ks, block_rows) -> dict[int, torch.Tensor]:
    """k-NN sets when rows repeat: similarities to the distinct vectors, then the best
    ``kmax + 1`` groups expanded into their first ``kmax + 2`` members (enough for any k, self
    excluded) and ranked by (similarity, -row) keys. Rows whose group ranking is tied at the
    boundary fall back to the row-wise search."""
    n, m, dev = zn.shape[0], uniq.shape[0], zn.device
    kmax = ks[-1]
    n_groups = min(kmax + 1, m)
    cap = min(kmax + 2, int(counts.max()))
    members = torch.argsort(inverse, stable=True)  # rows grouped, ascending within a group
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(cap, device=dev)
    low = torch.iinfo(torch.int64).min
    rows = block_rows or max(1, _block_elements(dev) // max(m, n_groups * cap, 1))
    parts: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for a in range(0, n, rows):
        b = min(a + rows, n)
        sim = zn[a:b] @ uniq.T
        sim += 0.0
        gv, gi = torch.topk(sim, min(n_groups + 1, m), dim=1, sorted=True)
        cand = members[(first[gi[:, :n_groups], None] + slot).clamp_(max=n - 1)]
        ok = slot < counts[gi[:, :n_groups], None]
        ok &= cand != torch.arange(a, b, device=dev)[:, None, None]
        keys = _monotone_keys(gv[:, :n_groups, None].expand(-1, -1, cap), cand)
        keys[~ok] = low
        top = torch.topk(keys.reshape(b - a, -1), kmax, dim=1, sorted=True).indices
        idx = cand.reshape(b - a, -1).gather(1, top)
        if n_groups < m:  # a tie between the last group taken and the first left out
            amb = (gv[:, n_groups - 1] == gv[:, n_groups]).nonzero().flatten()
            if amb.numel():
                qs = a + amb
                full = zn[qs] @ zn.T
                full[torch.arange(len(qs), device=dev), qs] = -math.inf
                idx[amb] = _ranked_top(full, ks)[:, :kmax]
        for k in ks:
            parts[k].append(idx[:, :k].sort(1).values)
    return {k: torch.cat(v) for k, v in parts.items()}


def jaccard_rows(a, b) -> np.ndarray | torch.Tensor:
    """Per-row Jaccard index |A_i & B_i| / |A_i | B_i| of two (N, k) index arrays whose rows
    hold k distinct indices each."""
    as_numpy = not isinstance(a, torch.Tensor)
    ta, tb = torch.as_tensor(a), torch.as_tensor(b)
    if ta.shape != tb.shape:
        raise DataError(
            f"neighbour sets of different shapes {tuple(ta.shape)} vs {tuple(tb.shape)}"
        )
    k = ta.shape[1]
    tb = tb.to(ta.device)
    sorted_a = ta.sort(1).values
    pos = torch.searchsorted(sorted_a, tb.contiguous()).clamp_(max=k - 1)
    inter = (sorted_a.gather(1, pos) == tb).sum(1).to(torch.float64)
    j = inter / (2 * k - inter)
    return j.cpu().numpy() if as_numpy else j


@metric(
    level="geometry",
    defaults={"k": 10},
    invariant=("rotation", "permutation", "isotropic_scale"),
    variant=("translation", "anisotropic_scale", "general_linear"),
    notes="Cosine similarity is measured from the origin, so unlike CKA the k-NN overlap "
    "changes under a translation.",
)
def knn_overlap(X, Y, k: int = 10, *, device=None) -> float:
    """k-NN overlap (paper Eq. 5): (1/N) sum_i |N_k^X(i) & N_k^Y(i)| / |N_k^X(i) | N_k^Y(i)|,
    N_k(i) = the k rows of highest cosine similarity to row i, row i itself excluded.

    Exact and deterministic (see :func:`nearest_neighbours`). Two independent representations
    give about k / (2(N-1)) (an overlap fraction |A & B| / k of about k / (N-1)).
    """
    sx, sy = as_source(X, "X"), as_source(Y, "Y")
    check_pair(sx, sy)
    nx = nearest_neighbours(sx.array, int(k), device=device, name=sx.name)
    ny = nearest_neighbours(sy.array, int(k), device=device, name=sy.name)
    return float(jaccard_rows(nx, ny).mean())
