"""Representation-level metrics (paper 3.2, Appendix B.1): does feature j of one model match
feature j of the other, and is the best orthogonal map between them a permutation?"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from ..errors import DataError
from .registry import metric, register
from .streaming import DEFAULT_CHUNK_SIZE, pair_statistics

log = logging.getLogger("hrsa.metrics")


@dataclass(frozen=True)
class DimensionWiseCorrelation:
    """``mean`` = signed mean of rho_j over the kept features; ``per_feature`` has NaN at the
    dropped (zero-variance) features; ``dropped_x``/``dropped_y`` count them per model."""

    mean: float
    per_feature: np.ndarray
    dropped_x: int
    dropped_y: int
    n_dropped: int

    def __float__(self) -> float:
        return self.mean


def correlation_from_terms(
    cross_diag: torch.Tensor,
    diag_x: torch.Tensor,
    diag_y: torch.Tensor,
    constant_x: torch.Tensor,
    constant_y: torch.Tensor,
    what: str = "X, Y",
) -> DimensionWiseCorrelation:
    """rho_j = C_jj / sqrt(Gx_jj Gy_jj) from the centred cross and self products."""
    if cross_diag.shape != diag_x.shape or diag_x.shape != diag_y.shape:
        raise DataError(f"{what}: dimension-wise correlation needs equal feature counts")
    drop = constant_x | constant_y | (diag_x <= 0) | (diag_y <= 0)
    keep = ~drop
    rho = torch.full_like(cross_diag, float("nan"))
    rho[keep] = cross_diag[keep] / torch.sqrt(diag_x[keep] * diag_y[keep])
    if not bool(keep.any()):
        raise DataError(
            f"{what}: every feature has zero variance in one of the two "
            "representations; dimension-wise correlation is undefined"
        )
    per = rho.cpu().numpy()
    return DimensionWiseCorrelation(
        float(np.mean(per[keep.cpu().numpy()])),
        per,
        int((constant_x | (diag_x <= 0)).sum()),
        int((constant_y | (diag_y <= 0)).sum()),
        int(drop.sum()),
    )


@metric(
    level="representation",
    invariant=("isotropic_scale", "translation", "anisotropic_scale"),
    variant=("rotation", "permutation", "general_linear"),
    scalar=lambda X, Y, labels=None: dimension_wise_correlation(X, Y).mean,
    notes="Per-feature Pearson correlation is unchanged by a positive rescaling of each "
    "feature, hence invariant to (diagonal) anisotropic scaling.",
)
def dimension_wise_correlation(
    X, Y, *, chunk_size: int = DEFAULT_CHUNK_SIZE, device=None
) -> DimensionWiseCorrelation:
    """Dimension-wise correlation (paper Eq. 1): rho_j = Xc_j^T Yc_j / (||Xc_j|| ||Yc_j||),
    summarised by the signed mean over features j.

    Features with zero variance in either representation (exactly constant over tokens) have no
    correlation; they are dropped from the mean and counted (``dropped_x``, ``dropped_y``).
    """
    st = pair_statistics(X, Y, device=device, chunk_size=chunk_size, same_dim=True)
    return correlation_from_terms(
        st.cross.cross.diagonal(),
        st.x_self.diag,
        st.y_self.diag,
        st.x_mom.constant,
        st.y_mom.constant,
    )


def inverse_row_entropy(orthogonal_map) -> float:
    """H_inv of an orthogonal map (Appendix B.1.2): the squared entries of each row of O form a
    distribution; H = mean row entropy / log D; H_inv = 1 - H (1 for a permutation, 0 when every
    row is uniform)."""
    o = torch.as_tensor(orthogonal_map, dtype=torch.float64)
    d = o.shape[0]
    if o.ndim != 2 or o.shape[1] != d or d < 2:
        raise DataError(
            f"inverse row entropy needs a square map of size >= 2, got {tuple(o.shape)}"
        )
    p = o.square()
    p = p / p.sum(1, keepdim=True)  # rows of an orthogonal map sum to 1; remove rounding
    row_entropy = -torch.xlogy(p, p).sum(1)
    return float(1.0 - row_entropy.mean() / math.log(d))


@dataclass(frozen=True)
class Procrustes:
    """Orthogonal Procrustes between Xc and Yc.

    ``orthogonal_map`` O* (D x D, fp64); ``h_inv`` its inverse row entropy; ``residual`` the
    normalised residual ||Xc O*/||Xc||_F - Yc/||Yc||_F||_F^2 = 2 - 2 sum(sigma) /
    (||Xc||_F ||Yc||_F), in [0, 2] (0 = identical up to rotation and scale); ``rank`` of Xc^T Yc
    (O* is unique only at full rank).
    """

    orthogonal_map: np.ndarray
    h_inv: float
    residual: float
    rank: int
    singular_values: np.ndarray


#: polar factors: above this estimate of the condition number of C the Newton iteration is not
#: trusted (C numerically singular: the orthogonal map is not unique, or its fp64 accuracy
#: ~u64 * kappa exceeds 1e-8) and the fp64 SVD decides instead
POLAR_MAX_CONDITION = 1e8
#: fp32 inverses in the Newton iteration only on iterates whose estimated condition number is
#: at most this (the fp32 error in H_inv grows like u32 * kappa: measured <= 1e-7 up to 1e4,
#: 1e-5 at 1e6); above it, the inverse is fp64
POLAR_FP32_CONDITION = 3e3
#: the scaling of a Newton step comes from power-iteration estimates of sigma_max and sigma_min
#: while the iterate's condition number exceeds this, from Frobenius norms afterwards
_POLAR_ESTIMATE_ABOVE = 10.0


@dataclass(frozen=True)
class PolarFactor:
    """The orthogonal polar factor O of a square C = O H (H symmetric positive semi-definite).

    ``orthogonal_map`` (D x D, fp64); ``method`` "newton" (the scaled Newton iteration) or
    "svd" (the fp64 SVD fallback); ``condition`` the estimated 2-norm condition number of C
    (inf when singular); ``fp64_steps``/``fp32_steps`` the inverses taken in each precision
    and ``ns_steps`` the closing Newton-Schulz steps (GEMM only)."""

    orthogonal_map: torch.Tensor
    method: str
    condition: float
    fp64_steps: int = 0
    fp32_steps: int = 0
    ns_steps: int = 0


def _svd_polar(c: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(c)
    return u @ vh


def _inverse(x: torch.Tensor, dtype) -> torch.Tensor | None:
    """inv(x) computed in ``dtype``, returned in fp64; None where singular or not finite.

    On the CPU through LAPACK's getrf + getri (scipy), about twice as fast as
    torch.linalg.inv's LU solve against the identity."""
    try:
        if x.device.type == "cpu":
            a = x.to(dtype).numpy()
            with warnings.catch_warnings():  # ill-conditioning is judged by polar_factor
                warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
                inv = scipy.linalg.inv(a, check_finite=False)
            xi = torch.from_numpy(inv).to(torch.float64)
        else:
            xi = torch.linalg.inv(x.to(dtype)).to(torch.float64)
    except (RuntimeError, np.linalg.LinAlgError, ValueError):  # exactly singular
        return None
    return xi if bool(torch.isfinite(xi).all()) else None


def _norm2(x: torch.Tensor, v: torch.Tensor, steps: int = 12) -> float:
    """Largest singular value of ``x`` by power iteration on x^T x from ``v`` (an
    underestimate converging from below; GEMVs only), never below ||x||_F / sqrt(D)."""
    tiny = torch.finfo(torch.float64).tiny
    for _ in range(steps):  # no host syncs inside the loop
        v = x.T @ (x @ v)
        v = v / v.norm().clamp_min(tiny)
    est = float((x @ v).norm())
    return max(est, float(x.norm()) / math.sqrt(x.shape[0]))


def polar_factor(
    cross: torch.Tensor,
    *,
    max_condition: float = POLAR_MAX_CONDITION,
    fp32_condition: float = POLAR_FP32_CONDITION,
    max_steps: int = 40,
) -> PolarFactor:
    """Orthogonal polar factor of the square ``cross`` (= U V^T of its SVD) by Higham's scaled
    Newton iteration X <- (z X + X^-T / z) / 2, X_0 = C / ||C||_F, with the optimal scaling
    z = 1 / sqrt(sigma_max(X) sigma_min(X)) (both estimated by power iteration on X and on
    X^-1, GEMVs only); each step takes the condition number kappa to about
    (sqrt(kappa) + 1 / sqrt(kappa)) / 2.

    Mixed precision, decided per step from the estimated kappa: the first inverse is tried in
    fp32 and kept if kappa <= ``fp32_condition``; otherwise it is redone in fp64, and C with
    kappa > ``max_condition`` (or singular) goes to the fp64 SVD: its polar factor is not
    unique, or not accurate to 1e-8 even in fp64. Later inverses are fp32 once the predicted
    kappa is within ``fp32_condition``, so fp32 rounding only enters on well-conditioned
    iterates. When a step changes X by less than 1e-2 (relative, Frobenius), Newton-Schulz
    X <- X (3 I - X^T X) / 2 in fp32 (GEMM only) finishes. H_inv of the result equals that of
    the fp64 SVD to ~1e-7 or better (tests/test_uncertainty_fast.py)."""
    c = cross.to(torch.float64)
    d = c.shape[0]
    if c.ndim != 2 or c.shape[1] != d:
        raise DataError(f"a polar factor needs a square matrix, got {tuple(c.shape)}")
    scale = float(c.norm())
    if not (scale > 0 and math.isfinite(scale)):
        return PolarFactor(_svd_polar(c), "svd", math.inf)
    x = c / scale
    gen = torch.Generator(device=x.device).manual_seed(0)
    v0 = torch.randn(d, dtype=torch.float64, device=x.device, generator=gen)
    v0 = v0 / v0.norm()
    steps64 = steps32 = 0
    xi = _inverse(x, torch.float32)
    smax = _norm2(x, v0)  # sigma_max(X)
    sinv = _norm2(xi, v0) if xi is not None else math.inf  # 1 / sigma_min(X)
    kappa = smax * sinv
    if kappa <= fp32_condition:
        steps32 += 1
    else:
        xi = _inverse(x, torch.float64)
        sinv = _norm2(xi, v0) if xi is not None else math.inf
        kappa = smax * sinv
        if not kappa <= max_condition:
            return PolarFactor(_svd_polar(c), "svd", kappa)
        steps64 += 1
    condition = kappa
    for _ in range(max_steps):
        if kappa > _POLAR_ESTIMATE_ABOVE:  # optimal scaling from the 2-norm estimates
            z = math.sqrt(sinv / smax)
        else:  # Frobenius-norm scaling once X is well conditioned (no GEMVs)
            z = math.sqrt(float(xi.norm() / x.norm()))
        x_new = (0.5 * z) * x + (0.5 / z) * xi.T
        change = float((x_new - x).norm() / x_new.norm())
        x = x_new
        if change < 1e-2:
            break
        kappa = max(0.5 * (math.sqrt(kappa) + 1.0 / math.sqrt(kappa)), 1.0)  # predicted
        if kappa <= fp32_condition:
            xi = _inverse(x, torch.float32)
            steps32 += 1
        else:
            xi = _inverse(x, torch.float64)
            steps64 += 1
        if xi is None:
            return PolarFactor(_svd_polar(c), "svd", condition)
        if kappa > _POLAR_ESTIMATE_ABOVE:
            smax, sinv = _norm2(x, v0), _norm2(xi, v0)
            kappa = smax * sinv
    else:
        return PolarFactor(_svd_polar(c), "svd", condition)
    # Newton-Schulz X <- X (3 I - X^T X) / 2 in fp32 (GEMM only): the Newton step left an
    # error of about change^2 / 2, and each step takes an error e to about 1.5 e^2
    x32 = x.to(torch.float32)
    err, ns = 0.5 * change * change, 0
    while ns == 0 or err > 1e-8:
        x32 = 1.5 * x32 - 0.5 * (x32 @ (x32.T @ x32))
        err, ns = 1.5 * err * err, ns + 1
    return PolarFactor(x32.to(torch.float64), "newton", condition, steps64, steps32, ns)


def procrustes_from_cross(
    cross: torch.Tensor,
    trace_x: float,
    trace_y: float,
    what: str = "X, Y",
    warn: bool = True,
    *,
    method: str = "svd",
) -> Procrustes:
    """Solve Procrustes from the centred cross product C = Xc^T Yc = U S V^T: O* = U V^T.

    ``method`` "svd": fp64 SVD. "polar": :func:`polar_factor` (scaled Newton, GEMM and
    inverses, mostly fp32; the fp64 SVD where C is ill-conditioned or singular); then
    sum(sigma) = tr(O*^T C) (second-order accurate in O*), the singular values are the
    eigenvalues of the symmetric part of O*^T C, and the rank is D (C passed the condition
    check) unless the SVD fallback ran."""
    if cross.shape[0] != cross.shape[1]:
        raise DataError(f"{what}: Procrustes needs equal feature counts, got {tuple(cross.shape)}")
    if trace_x <= 0 or trace_y <= 0:
        raise DataError(f"{what}: a representation has zero variance; Procrustes is undefined")
    if method not in ("svd", "polar"):
        raise ValueError(f"procrustes_from_cross: method must be 'svd' or 'polar', got {method!r}")
    c = cross.to(torch.float64)
    pf = polar_factor(c) if method == "polar" else None
    if pf is None or pf.method == "svd":
        u, s, vh = torch.linalg.svd(c)
        o = u @ vh
        tol = float(s[0]) * s.shape[0] * torch.finfo(torch.float64).eps if s.numel() else 0.0
        rank = int((s > tol).sum())
        s_sum = float(s.sum())
    else:
        o = pf.orthogonal_map
        h = o.T @ c
        s = torch.linalg.eigvalsh(0.5 * (h + h.T)).flip(0).clamp_min(0.0)
        rank = s.shape[0]
        s_sum = float((o * c).sum())
    if warn and rank < s.shape[0]:
        log.warning(
            "%s: Xc^T Yc has rank %d < %d; the orthogonal map is not unique", what, rank, s.shape[0]
        )
    residual = 2.0 - 2.0 * s_sum / math.sqrt(trace_x * trace_y)
    return Procrustes(
        o.cpu().numpy(), inverse_row_entropy(o), max(residual, 0.0), rank, s.cpu().numpy()
    )


def procrustes(X, Y, *, chunk_size: int = DEFAULT_CHUNK_SIZE, device=None) -> Procrustes:
    """Orthogonal Procrustes (paper Eq. 2): O* = argmin_{O^T O = I} ||Xc O - Yc||_F^2 = U V^T
    from the SVD of Xc^T Yc; reports its inverse row entropy H_inv (Appendix B.1.2) and the
    normalised residual."""
    st = pair_statistics(X, Y, device=device, chunk_size=chunk_size, same_dim=True)
    return procrustes_from_cross(st.cross.cross, st.x_self.trace, st.y_self.trace)


register(
    "procrustes_h_inv",
    procrustes,
    level="representation",
    invariant=("permutation", "isotropic_scale", "translation"),
    variant=("rotation", "anisotropic_scale", "general_linear"),
    scalar=lambda X, Y, labels=None: procrustes(X, Y).h_inv,
    notes="O*(XP, Y) = P^T O*(X, Y) only reorders the rows of O*, so the mean row entropy "
    "is invariant to feature permutations; a rotation mixes them (Proposition 2).",
)
register(
    "procrustes_residual",
    procrustes,
    level="geometry",
    invariant=("rotation", "permutation", "isotropic_scale", "translation"),
    variant=("anisotropic_scale", "general_linear"),
    scalar=lambda X, Y, labels=None: procrustes(X, Y).residual,
    notes="The residual (not the structure of O*) is a shape distance: geometry level, as "
    "the Remark under Proposition 2 says.",
)
