"""Representation-level metrics (paper 3.2, Appendix B.1): does feature j of one model match
feature j of the other, and is the best orthogonal map between them a permutation?"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
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


def procrustes_from_cross(
    cross: torch.Tensor, trace_x: float, trace_y: float, what: str = "X, Y", warn: bool = True
) -> Procrustes:
    """Solve Procrustes from the centred cross product C = Xc^T Yc = U S V^T: O* = U V^T."""
    if cross.shape[0] != cross.shape[1]:
        raise DataError(f"{what}: Procrustes needs equal feature counts, got {tuple(cross.shape)}")
    if trace_x <= 0 or trace_y <= 0:
        raise DataError(f"{what}: a representation has zero variance; Procrustes is undefined")
    c = cross.to(torch.float64)
    u, s, vh = torch.linalg.svd(c)
    o = u @ vh
    tol = float(s[0]) * s.shape[0] * torch.finfo(torch.float64).eps if s.numel() else 0.0
    rank = int((s > tol).sum())
    if warn and rank < s.shape[0]:
        log.warning(
            "%s: Xc^T Yc has rank %d < %d; the orthogonal map is not unique", what, rank, s.shape[0]
        )
    residual = 2.0 - 2.0 * float(s.sum()) / math.sqrt(trace_x * trace_y)
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
