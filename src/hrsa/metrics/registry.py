"""The registry of HRSA metrics: each metric's level and declared invariances (paper Table 8).

A metric is added in one place, by decorating its function::

    @metric(level="geometry", invariant=("rotation", "permutation", "isotropic_scale",
                                          "translation"),
            variant=("anisotropic_scale", "general_linear"))
    def linear_cka(X, Y): ...

Transformations are applied to the first representation only (``X -> T(X)``, ``Y`` fixed), which
is how "similar up to T" is defined: a metric is *invariant* to T when ``m(T(X), Y) = m(X, Y)``
for every X, Y, and *variant* when it changes for generic data. ``tests/test_metrics_registry.py``
walks this registry and checks every declared property on random data, so a declaration is a
claim the test suite proves (Appendix B as executable property tests).

What a registered metric reaches: named in ``hrsa.extra_metrics``, it runs in every HRSA job on
the shared subsample, per hidden state i of both models (``spec.scalar(X_i, Y_i)``, fp32 rows;
a :class:`~hrsa.errors.DataError` makes that value NaN with a note), and its values become
``metrics.csv`` rows (``metric`` = its name, ``layer_base`` = ``layer_reason`` = i),
``summary.json``'s ``extra_metrics`` entry (level, description, per layer, final, mean over the
transformer layers) and a panel of the report's "Table 8 alternatives" figure. A metric outside
the package is a module or ``.py`` file named in ``hrsa.plugins`` (:func:`load_plugins`); see
docs/adding-a-metric.md. The paper's own metrics are computed by the streaming engine
(:mod:`hrsa.metrics.layerwise`) and the probe job, not through this path: they are registered for
the property tests and their invariances, and ``hrsa.metrics`` selects which of them run per level
(:data:`hrsa.config.PAPER_METRICS`; :class:`~hrsa.metrics.layerwise.HRSASettings` checks the
names, the plan leaves out the probe jobs and the report outputs of a metric left out).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

LEVELS = ("representation", "geometry", "function")

#: X -> X Q (Haar orthogonal), X -> X P (feature permutation), X -> c X, X -> X + 1 t^T,
#: X -> X diag(s) (positive, unequal), X -> X A (generic invertible).
TRANSFORMS = (
    "rotation",
    "permutation",
    "isotropic_scale",
    "translation",
    "anisotropic_scale",
    "general_linear",
)


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric. ``scalar(X, Y, labels)`` reduces it to the number the property
    tests compare; ``function`` is the public callable."""

    name: str
    level: str
    invariant: tuple[str, ...]
    variant: tuple[str, ...]
    function: Callable
    scalar: Callable[..., float]
    needs_labels: bool = False
    description: str = ""
    notes: str = ""
    defaults: dict = field(default_factory=dict)


REGISTRY: dict[str, MetricSpec] = {}


def register(
    name: str,
    function: Callable,
    *,
    level: str,
    invariant=(),
    variant=(),
    scalar: Callable[..., float] | None = None,
    needs_labels: bool = False,
    notes: str = "",
    defaults: dict | None = None,
) -> MetricSpec:
    """Add a metric to :data:`REGISTRY` (names are unique; re-registering replaces)."""
    if level not in LEVELS:
        raise ValueError(f"{name}: level {level!r} not in {LEVELS}")
    invariant, variant = tuple(invariant), tuple(variant)
    unknown = {t for t in (*invariant, *variant) if t not in TRANSFORMS}
    if unknown:
        raise ValueError(f"{name}: unknown transformations {sorted(unknown)}; known: {TRANSFORMS}")
    both = set(invariant) & set(variant)
    if both:
        raise ValueError(f"{name}: declared both invariant and variant to {sorted(both)}")
    defaults = dict(defaults or {})
    if scalar is None:

        def scalar(X, Y, labels=None, _f=function, _kw=defaults):
            return float(_f(X, Y, **_kw))

    doc = (function.__doc__ or "").strip().splitlines()
    spec = MetricSpec(
        name,
        level,
        invariant,
        variant,
        function,
        scalar,
        needs_labels,
        doc[0] if doc else "",
        notes,
        defaults,
    )
    REGISTRY[name] = spec
    return spec


def metric(
    *,
    level: str,
    invariant=(),
    variant=(),
    name: str | None = None,
    scalar: Callable[..., float] | None = None,
    needs_labels: bool = False,
    notes: str = "",
    defaults: dict | None = None,
):
    """Decorator form of :func:`register`; returns the function unchanged."""

    def wrap(function: Callable) -> Callable:
        register(
            name or function.__name__,
            function,
            level=level,
            invariant=invariant,
            variant=variant,
            scalar=scalar,
            needs_labels=needs_labels,
            notes=notes,
            defaults=defaults,
        )
        return function

    return wrap


def metrics(level: str | None = None) -> list[MetricSpec]:
    """Registered metrics, optionally of one level: by level (representation, geometry,
    function), then in registration order."""
    chosen = [m for m in REGISTRY.values() if level is None or m.level == level]
    return sorted(chosen, key=lambda m: LEVELS.index(m.level))


def get_metric(name: str) -> MetricSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no metric {name!r}; registered: {sorted(REGISTRY)}") from None


def load_plugins(entries: Iterable[str], basedir: str | Path | None = None) -> list[str]:
    """Import the plug-in modules of ``hrsa.plugins`` so that their ``@metric`` declarations
    register: a dotted module name (importable on ``sys.path``) or a ``.py`` file (relative
    paths from ``basedir``, the workflow directory). Returns the module names imported."""
    from ..errors import config_error

    names = []
    for i, entry in enumerate(entries):
        key = f"hrsa.plugins[{i}]"
        if str(entry).endswith(".py"):
            path = Path(entry)
            if not path.is_absolute() and basedir is not None:
                path = Path(basedir) / path
            if not path.is_file():
                raise config_error(key, f"plug-in file {path} does not exist")
            name = f"hrsa_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[name]
                raise config_error(key, f"importing {path} failed: {exc!r}") from exc
        else:
            name = str(entry)
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise config_error(key, f"cannot import plug-in module {name!r}: {exc}") from exc
        names.append(name)
    return names


def _configured_metric(name: str, key: str, labelled: bool, wrong_kind: str) -> MetricSpec:
    """The registered metric ``name`` named by config ``key``; it must need labels exactly when
    ``labelled`` (else the error says ``wrong_kind``)."""
    from ..errors import config_error

    if name not in REGISTRY:
        raise config_error(key, f"no registered metric {name!r}; registered: {sorted(REGISTRY)}")
    spec = REGISTRY[name]
    if spec.needs_labels != labelled:
        raise config_error(key, f"{name!r} {wrong_kind}")
    return spec


def labelled_metric(name: str, key: str = "hrsa.probe.extra_metrics") -> MetricSpec:
    """The registered metric ``name``, checked to be one that needs labels (it runs with the
    cross-model probe on the sentence embeddings and their class labels)."""
    return _configured_metric(
        name, key, True, "needs no labels; list it in hrsa.extra_metrics (per hidden state)"
    )


def subsample_metric(name: str, key: str = "hrsa.extra_metrics") -> MetricSpec:
    """The registered metric ``name``, checked usable per hidden state on the subsample (two
    row-aligned representations, no labels)."""
    return _configured_metric(
        name, key, False, "needs labels; it runs in the cross-model probe, not on the subsample"
    )
