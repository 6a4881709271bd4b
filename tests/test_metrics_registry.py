"""Appendix B as executable property tests: every registered metric's declared invariances
(and non-invariances) are checked on random data, so a new metric is covered when registered."""

from __future__ import annotations

import numpy as np
import pytest

from hrsa.metrics import LEVELS, REGISTRY, TRANSFORMS, metrics, register

N, D, CLASSES = 240, 12, 3


def _haar(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def transform(name: str, X: np.ndarray, rng) -> np.ndarray:
    """X -> T(X) for each transformation in TRANSFORMS."""
    d = X.shape[1]
    if name == "rotation":
        return X @ _haar(rng, d)
    if name == "permutation":
        perm = rng.permutation(d)
        while (perm == np.arange(d)).any():  # move every feature
            perm = rng.permutation(d)
        return X[:, perm]
    if name == "isotropic_scale":
        return 3.7 * X
    if name == "translation":
        return X + 4.0 * rng.standard_normal(d)
    if name == "anisotropic_scale":
        return X * np.exp(rng.uniform(-1.5, 1.5, d))
    if name == "general_linear":
        return X @ (rng.standard_normal((d, d)) + 0.5 * np.eye(d))
    raise AssertionError(name)


@pytest.fixture(scope="module")
def data():
    """Correlated, clustered X (so no transformation is trivially harmless), Y = noisy X, labels."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(CLASSES), N // CLASSES)
    centres = 2.0 * rng.standard_normal((CLASSES, D))
    mixing = rng.standard_normal((D, D)) / np.sqrt(D) + np.eye(D)
    X = (centres[labels] + rng.standard_normal((N, D))) @ mixing + 0.5
    Y = X + 0.4 * rng.standard_normal((N, D))
    return X, Y, labels


def test_registry_covers_every_level_and_declares_every_transformation():
    assert {m.level for m in metrics()} == set(LEVELS)
    for m in metrics():
        declared = set(m.invariant) | set(m.variant)
        assert not set(m.invariant) & set(m.variant), m.name
        assert declared == set(TRANSFORMS), (m.name, set(TRANSFORMS) - declared)


def test_table8_defaults_are_registered_at_their_level():
    want = {
        "dimension_wise_correlation": "representation",
        "procrustes_h_inv": "representation",
        "linear_cka": "geometry",
        "knn_overlap": "geometry",
        "debiased_cka": "geometry",
        "rbf_cka": "geometry",
        "cross_model_probe": "function",
    }
    assert {k: REGISTRY[k].level for k in want} == want
    # Table 8's level constraints: geometry metrics ignore rotations but see anisotropic
    # stretches; representation metrics see rotations.
    assert all("rotation" in m.invariant for m in metrics("geometry"))
    assert all("anisotropic_scale" in m.variant for m in metrics("geometry"))
    assert all("rotation" in m.variant for m in metrics("representation"))


CASES = [(m.name, t, "invariant") for m in metrics() for t in m.invariant] + [
    (m.name, t, "variant") for m in metrics() for t in m.variant
]


@pytest.mark.parametrize(
    "name,transformation,expect", CASES, ids=[f"{n}-{t}-{e}" for n, t, e in CASES]
)
def test_declared_property_holds(data, name, transformation, expect):
    X, Y, labels = data
    spec = REGISTRY[name]
    rng = np.random.default_rng(11)
    before = spec.scalar(X, Y, labels)
    after = spec.scalar(transform(transformation, X, rng), Y, labels)
    assert np.isfinite(before) and np.isfinite(after)
    if expect == "invariant":
        assert after == pytest.approx(before, abs=2e-6), (name, transformation, before, after)
    else:
        assert abs(after - before) > 1e-3, (name, transformation, before, after)


def test_register_rejects_unknown_and_contradictory_declarations():
    with pytest.raises(ValueError, match="unknown"):
        register("bad", lambda X, Y: 0.0, level="geometry", invariant=("shear",))
    with pytest.raises(ValueError, match="both"):
        register(
            "bad",
            lambda X, Y: 0.0,
            level="geometry",
            invariant=("rotation",),
            variant=("rotation",),
        )
    with pytest.raises(ValueError, match="level"):
        register("bad", lambda X, Y: 0.0, level="behaviour")
    assert "bad" not in REGISTRY
