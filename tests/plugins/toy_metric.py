"""A plug-in outside the package: the ratio of the two representations' spreads."""

import numpy as np

from hrsa.metrics.registry import metric


@metric(
    level="representation",
    invariant=("rotation", "permutation", "translation"),
    variant=("isotropic_scale",),
)
def spread_ratio(X, Y):
    """||Xc||_F / ||Yc||_F of the centred representations."""
    x = np.asarray(X, dtype=np.float64)
    y = np.asarray(Y, dtype=np.float64)
    return float(np.linalg.norm(x - x.mean(0)) / np.linalg.norm(y - y.mean(0)))
