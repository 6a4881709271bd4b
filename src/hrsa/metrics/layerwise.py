"""Layer-by-layer HRSA of two activation stores (paper Figure 3, Tables 3, 4, 12, 13).

Plan of one comparison, base model X (layers 0..L) vs reasoning model Y:

1. one pass over the rows of every layer file of both models
   (:class:`~hrsa.metrics.streaming.LayerStream`): each token chunk of each layer is read and
   converted once and feeds the column means and zero-variance features
   (:class:`~hrsa.metrics.streaming.Moments`), the self Grams
   (:class:`~hrsa.metrics.streaming.SelfTerms`), the cross products Xc_i^T Yc_j of every layer
   pair (i, j) (fp32 products summed in fp64, exact centring by a rank-1 correction, fp64
   reductions), and the gather of the shared row subsample of step 3. When the accumulators of
   every pair do not fit the memory budget, the pairs are split into the fewest passes that fit;
2. every layer pair (i, j) reduced at once to linear CKA and dimension-wise correlation; on the
   diagonal also debiased CKA and Procrustes (H_inv, residual);
3. on one shared, seeded subsample of rows (at most ``knn_max_tokens``, gathered in step 1), per
   layer: exact cosine k-NN sets of each model (once per model and layer, reused for every k and
   every null permutation), the permutation nulls of CKA and k-NN overlap, and the bootstrap over
   sequences of the headline numbers.

Confidence intervals (:func:`~hrsa.metrics.uncertainty.bootstrap_interval`): the replicates of
the bootstrap over sequences are computed on the subsample (the whole store for the default tiny
stores); the interval is their spread around their median, placed around the full-data value.
The bootstrap's own bias estimate is reported separately in ``summary.json``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..config import HRSA_OTHER_KEYS, PAPER_METRICS, schema_default
from ..errors import DataError, PairMismatchError, config_error
from .geometry import _neighbours_tensor, cka_from_terms, debiased_cka_from_terms, jaccard_rows
from .registry import subsample_metric
from .representation import correlation_from_terms, procrustes_from_cross
from .result import (
    FIRST_TRANSFORMER_LAYER,
    KNN_LAYER_0_NOTE,
    KNN_LAYER_MEANS,
    KNN_TABLE4_NOTE,
    METRICS_COLUMNS,
    HRSAResult,
)
from .streaming import (
    DEFAULT_ACCUMULATOR_BYTES,
    DEFAULT_CHUNK_SIZE,
    LayerStream,
    Source,
    as_source,
    resolve_device,
)
from .uncertainty import (
    bootstrap_replicates,
    centred,
    permutation_nulls,
    row_permutations,
    sequence_weights,
    weighted_pair,
)

log = logging.getLogger("hrsa.metrics")

_NAN = float("nan")

# HRSAResult and the output constants moved to .result; re-exported here
__all__ = [
    "FIRST_TRANSFORMER_LAYER",
    "KNN_LAYER_0_NOTE",
    "KNN_LAYER_MEANS",
    "KNN_TABLE4_NOTE",
    "METRICS_COLUMNS",
    "HRSAResult",
    "HRSASettings",
    "LayerwiseSimilarity",
    "SubsampleAnalysis",
    "compare_stores",
    "layerwise_similarity",
    "subsample_analysis",
    "subsample_rows",
]


@dataclass(frozen=True)
class HRSASettings:
    """Settings of one comparison (``config["hrsa"]``; see config/README.md)."""

    # defaults: the config schema's (its one owner; hrsa.config.schema_default)
    knn_k: tuple[int, ...] = tuple(schema_default("hrsa.knn_k"))
    knn_max_tokens: int = schema_default("hrsa.knn_max_tokens")
    chunk_size: int = schema_default("hrsa.chunk_size")
    bootstrap: int = schema_default("hrsa.bootstrap")
    permutations: int = schema_default("hrsa.permutations")
    ci: float = schema_default("hrsa.ci")
    seed: int = schema_default("hrsa.seed")
    device: str = schema_default("device")  # hrsa.device's derived default: the top-level one
    accumulator_bytes: int = schema_default("hrsa.accumulator_bytes")
    products: str = schema_default("hrsa.products")
    accumulate: str = schema_default("hrsa.accumulate")
    #: registered metrics computed per hidden state on the subsample (hrsa.metrics.registry)
    extra_metrics: tuple[str, ...] = tuple(schema_default("hrsa.extra_metrics"))
    #: the paper's metrics to compute, per level (``hrsa.metrics``; a level not given: all of
    #: :data:`~hrsa.config.PAPER_METRICS`'s); :meth:`computes` asks for one
    metrics: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(PAPER_METRICS))

    #: keys of ``config["hrsa"]`` that belong to other rules and are ignored here
    OTHER_KEYS = HRSA_OTHER_KEYS

    def __post_init__(self):
        object.__setattr__(self, "knn_k", tuple(sorted({int(k) for k in self.knn_k})))
        object.__setattr__(self, "extra_metrics", tuple(str(m) for m in self.extra_metrics))
        object.__setattr__(self, "metrics", paper_metric_selection(self.metrics))
        checks = [
            (
                len(self.knn_k) > 0 and self.knn_k[0] >= 1 or not self.computes("knn_overlap"),
                "knn_k",
                "a non-empty list of k >= 1",
            ),
            (self.knn_max_tokens >= 2, "knn_max_tokens", ">= 2"),
            (self.chunk_size >= 1, "chunk_size", ">= 1"),
            (self.bootstrap >= 0, "bootstrap", ">= 0"),
            (self.permutations >= 0, "permutations", ">= 0"),
            (0 < self.ci < 1, "ci", "in (0, 1)"),
            (self.accumulator_bytes >= 1, "accumulator_bytes", ">= 1"),
            (self.products in ("fp32", "tf32"), "products", "fp32 or tf32"),
            (self.accumulate in ("fp64", "fp32"), "accumulate", "fp64 or fp32"),
        ]
        for ok, key, want in checks:
            if not ok:
                raise config_error(f"hrsa.{key}", f"must be {want}, got {getattr(self, key)!r}")

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> HRSASettings:
        """Build from ``config["hrsa"]``; unknown keys are an error (typos do not pass silently)."""
        cfg = dict(cfg or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(cfg) - known - set(cls.OTHER_KEYS))
        if unknown:
            raise config_error("hrsa", f"unknown settings {unknown}; known: {sorted(known)}")
        kw = {k: v for k, v in cfg.items() if k in known}
        try:
            if "knn_k" in kw:
                kw["knn_k"] = tuple(
                    int(k)
                    for k in (kw["knn_k"] if isinstance(kw["knn_k"], Sequence) else [kw["knn_k"]])
                )
            for key in (
                "knn_max_tokens",
                "chunk_size",
                "bootstrap",
                "permutations",
                "seed",
                "accumulator_bytes",
            ):
                if key in kw:
                    kw[key] = int(kw[key])
            if "ci" in kw:
                kw["ci"] = float(kw["ci"])
        except (TypeError, ValueError) as exc:
            raise config_error("hrsa", f"invalid setting ({exc})") from exc
        return cls(**kw)

    def computes(self, name: str) -> bool:
        """Whether the paper's metric ``name`` (a name of :data:`~hrsa.config.PAPER_METRICS`)
        is selected by ``hrsa.metrics``."""
        return any(name in names for names in self.metrics.values())

    def as_dict(self) -> dict:
        d = asdict(self)
        d["knn_k"] = list(self.knn_k)
        d["extra_metrics"] = list(self.extra_metrics)
        d["metrics"] = {level: list(names) for level, names in self.metrics.items()}
        return d


def paper_metric_selection(
    selection: Mapping | None, key: str = "hrsa.metrics"
) -> dict[str, tuple[str, ...]]:
    """``hrsa.metrics`` checked and completed: level -> the selected paper metrics of that level
    (a level not given selects all of its metrics). A name of another level, a registered
    alternative or an unknown name is a config error naming the entry."""
    if selection is None:
        selection = {}
    if not isinstance(selection, Mapping):
        raise config_error(key, f"must be a mapping of level -> metrics, got {selection!r}")
    unknown = sorted(set(selection) - set(PAPER_METRICS))
    if unknown:
        raise config_error(key, f"unknown levels {unknown}; known: {list(PAPER_METRICS)}")
    out = {}
    for level, allowed in PAPER_METRICS.items():
        names = selection.get(level, allowed)
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise config_error(f"{key}.{level}", f"must be a list of metric names, got {names!r}")
        for i, name in enumerate(names):
            if name in allowed:
                continue
            where = [lv for lv, ns in PAPER_METRICS.items() if name in ns]
            hint = (
                f"it is a {where[0]}-level metric (list it under {key}.{where[0]})"
                if where
                else "Table 8 alternatives and plug-ins go in hrsa.extra_metrics "
                "(hrsa.probe.extra_metrics when they need labels)"
            )
            raise config_error(
                f"{key}.{level}[{i}]",
                f"{name!r} is not one of the paper's {level}-level metrics {list(allowed)}; {hint}",
            )
        out[level] = tuple(n for n in allowed if n in names)  # the paper's order
    return out


@contextlib.contextmanager
def _exact_fp32_matmul():
    """No TF32 shortcuts in fp32 products while computing similarities."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


class _Undefined:
    """Collects metrics that are undefined for these data (NaN in the tables, named here)."""

    def __init__(self):
        self.notes: list[str] = []

    def __call__(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except DataError as exc:
            if str(exc) not in self.notes:
                self.notes.append(str(exc))
                log.warning("undefined, reported as NaN: %s", exc)
            return None


def _extra_value(spec, x: np.ndarray, y: np.ndarray, what: str) -> float:
    """A registered metric's number for one hidden state's subsample rows (fp32, row-aligned);
    where it is undefined the note names the metric and the hidden state."""
    try:
        return float(spec.scalar(x, y))
    except DataError as exc:
        raise DataError(f"{spec.name}, {what}: {exc}") from exc


@dataclass
class LayerwiseSimilarity:
    """Streaming results: full (L+1) x (L+1) matrices and per-layer (diagonal) metrics."""

    dimension_wise_correlation: np.ndarray
    linear_cka: np.ndarray
    debiased_cka: np.ndarray
    procrustes_h_inv: np.ndarray
    procrustes_residual: np.ndarray
    dropped_base: list[int]
    dropped_reasoning: list[int]
    n_rows: int
    undefined: list[str] = field(default_factory=list)
    seconds: float = 0.0
    constant_base: list[np.ndarray] = field(default_factory=list, repr=False)
    constant_reasoning: list[np.ndarray] = field(default_factory=list, repr=False)
    #: passes over the rows (1 when every accumulator fits) and bytes read from store files
    passes: int = 1
    bytes_read: int = 0


def layerwise_similarity(
    base_layers: Sequence,
    reasoning_layers: Sequence,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device=None,
    accumulator_bytes: int = DEFAULT_ACCUMULATOR_BYTES,
    diagonal: bool = True,
    products: str = schema_default("hrsa.products"),
    accumulate: str = schema_default("hrsa.accumulate"),
    memory_budget: int | None = None,
) -> LayerwiseSimilarity:
    """Dimension-wise correlation and linear CKA for every layer pair, and (``diagonal``)
    debiased CKA and Procrustes for every layer i vs i, in one pass over token chunks.

    ``base_layers``/``reasoning_layers``: sequences of (N, D) arrays (memory maps, numpy,
    torch) or :class:`~hrsa.metrics.streaming.Source` objects, row-aligned.
    ``accumulator_bytes``: the CPU's memory budget of the accumulators (on CUDA the device's
    free memory decides); ``memory_budget`` overrides both. ``products``: ``fp32`` or ``tf32``
    (TF32 tensor cores for the streamed products on CUDA). ``accumulate``: ``fp64``
    accumulators (default) or ``fp32`` ones updated in place (half the memory; see
    :mod:`hrsa.metrics.streaming` for the accuracy of each).
    """
    lw, _ = _layerwise(
        base_layers,
        reasoning_layers,
        chunk_size=chunk_size,
        device=device,
        accumulator_bytes=accumulator_bytes,
        diagonal=diagonal,
        products=products,
        accumulate=accumulate,
        memory_budget=memory_budget,
    )
    return lw


def _layerwise(
    base_layers: Sequence,
    reasoning_layers: Sequence,
    *,
    chunk_size: int,
    device,
    accumulator_bytes: int,
    diagonal: bool,
    products: str = schema_default("hrsa.products"),
    accumulate: str = schema_default("hrsa.accumulate"),
    memory_budget: int | None = None,
    gather_rows: np.ndarray | None = None,
    computes: Callable[[str], bool] = lambda name: True,
) -> tuple[LayerwiseSimilarity, LayerStream]:
    """:func:`layerwise_similarity`, also gathering the rows ``gather_rows`` of every layer in
    the same pass (``stream.gathered_x``/``gathered_y``). ``computes(name)``: whether the paper's
    metric ``name`` is wanted (:meth:`HRSASettings.computes`); the others stay NaN. The streamed
    products serve every metric at once, so this saves the reductions (Procrustes' SVDs), not
    the pass."""
    t0 = time.perf_counter()
    xs = [as_source(x, f"base hidden state {i}") for i, x in enumerate(base_layers)]
    ys = [as_source(y, f"reasoning hidden state {j}") for j, y in enumerate(reasoning_layers)]
    if not xs or not ys:
        raise DataError("layerwise_similarity: no layers given")
    dev = resolve_device(device, *xs, *ys)
    und = _Undefined()
    stream = LayerStream(
        xs,
        ys,
        device=dev,
        chunk_size=chunk_size,
        accumulator_bytes=accumulator_bytes,
        debiased=diagonal,
        gather_rows=gather_rows,
        products=products,
        accumulate=accumulate,
        memory_budget=memory_budget,
    )
    log.info("%r", stream)
    la, lb, n = len(xs), len(ys), xs[0].n_rows
    corr, cka = np.full((la, lb), _NAN), np.full((la, lb), _NAN)
    ld = min(la, lb) if diagonal else 0
    deb, hinv, resid = np.full(ld, _NAN), np.full(ld, _NAN), np.full(ld, _NAN)
    same_dim = xs[0].dim == ys[0].dim
    want_cka, want_corr = computes("linear_cka"), computes("dimension_wise_correlation")
    want_procrustes = computes("procrustes")
    with _exact_fp32_matmul():
        for i, j, ct in stream.pairs():
            mx, my = stream.x_moments, stream.y_moments
            sx, sy = stream.x_self, stream.y_self
            what = f"base hidden state {i} vs reasoning hidden state {j}"
            if want_cka:
                v = und(cka_from_terms, ct.cross, sx[i], sy[j], what)
                cka[i, j] = _NAN if v is None else v
            if same_dim and want_corr:
                r = und(
                    correlation_from_terms,
                    ct.cross.diagonal(),
                    sx[i].diag,
                    sy[j].diag,
                    mx[i].constant,
                    my[j].constant,
                    what,
                )
                corr[i, j] = _NAN if r is None else r.mean
            if diagonal and i == j:
                if want_cka:
                    v = und(debiased_cka_from_terms, ct, n, sx[i], sy[j], what)
                    deb[i] = _NAN if v is None else v
                if same_dim and want_procrustes:
                    p = und(procrustes_from_cross, ct.cross, sx[i].trace, sy[j].trace, what)
                    if p is not None:
                        hinv[i], resid[i] = p.h_inv, p.residual
    mx, my = stream.x_moments, stream.y_moments
    lw = LayerwiseSimilarity(
        corr,
        cka,
        deb,
        hinv,
        resid,
        [m.n_constant for m in mx],
        [m.n_constant for m in my],
        n,
        und.notes,
        time.perf_counter() - t0,
        [m.constant.cpu().numpy() for m in mx],
        [m.constant.cpu().numpy() for m in my],
        len(stream.passes),
        stream.bytes_read,
    )
    return lw, stream


def _check_knn_k(ks: Sequence[int], n: int) -> None:
    if max(ks) > n - 1:
        raise DataError(
            f"k-NN overlap with k = {max(ks)} needs more than k tokens; the subsample "
            f"has {n}. Lower hrsa.knn_k or use a larger probe dataset."
        )


def subsample_rows(n_rows: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subsample of at most ``max_rows`` rows (all rows if fewer)."""
    if n_rows <= max_rows:
        return np.arange(n_rows)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    return np.sort(rng.choice(n_rows, size=max_rows, replace=False))


@dataclass
class SubsampleAnalysis:
    """k-NN overlap, nulls and bootstrap replicates computed on the shared row subsample.

    Arrays are indexed [replicate or permutation, layer]; dicts by k."""

    rows: np.ndarray
    knn: dict[int, np.ndarray]
    knn_boot: dict[int, np.ndarray]
    knn_null: dict[int, np.ndarray]
    linear_cka: np.ndarray
    dimension_wise_correlation: np.ndarray
    h_inv_final: float
    linear_cka_boot: np.ndarray
    dimension_wise_correlation_boot: np.ndarray
    h_inv_final_boot: np.ndarray
    linear_cka_null: np.ndarray
    undefined: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: per registered extra metric (``settings.extra_metrics``), its value per hidden state
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def subsample_analysis(
    base_layers: Sequence,
    reasoning_layers: Sequence,
    sequence_index,
    n_sequences: int,
    settings: HRSASettings,
    *,
    device=None,
    constant_base: Sequence | None = None,
    constant_reasoning: Sequence | None = None,
    gathered: tuple[list, list] | None = None,
) -> SubsampleAnalysis:
    """Per layer i vs i on the shared subsample: k-NN overlap for every k, permutation nulls of
    linear CKA and k-NN overlap, bootstrap-over-sequences replicates of the headline numbers.

    Each hidden state is gathered, searched for neighbours and centred once; the observed
    values, the bootstrap (:func:`~hrsa.metrics.uncertainty.bootstrap_replicates`) and the
    permutation nulls (:func:`~hrsa.metrics.uncertainty.permutation_nulls`) reuse that work.
    ``gathered``: the subsample's rows of every layer of both models, already collected (by
    :func:`compare_stores`, in its one pass over the data); the entries are released as they
    are used. Without it the rows are read from the layers here."""
    t0 = time.perf_counter()
    xs = [as_source(x, f"base hidden state {i}") for i, x in enumerate(base_layers)]
    ys = [as_source(y, f"reasoning hidden state {j}") for j, y in enumerate(reasoning_layers)]
    n_layers = min(len(xs), len(ys))
    final = n_layers - 1
    dev = resolve_device(settings.device if device is None else device, *xs, *ys)
    rows = subsample_rows(xs[0].n_rows, settings.knn_max_tokens, settings.seed)
    n = rows.size
    seq = np.asarray(sequence_index, dtype=np.int64)[rows]
    want_knn, want_cka = settings.computes("knn_overlap"), settings.computes("linear_cka")
    want_h_inv = settings.computes("procrustes")
    ks = list(settings.knn_k) if want_knn else []
    if ks:
        _check_knn_k(ks, n)
    if gathered is not None and not (
        len(gathered[0]) >= n_layers
        and len(gathered[1]) >= n_layers
        and all(g is None or g.shape[0] == n for g in (*gathered[0], *gathered[1]))
    ):
        raise ValueError("gathered rows do not match the subsample")
    und = _Undefined()
    weights = np.zeros((0, n))
    if settings.bootstrap:
        weights = und(
            sequence_weights,
            seq,
            n_sequences,
            settings.bootstrap,
            np.random.SeedSequence([settings.seed, 1]),
        )
        weights = np.zeros((0, n)) if weights is None else weights
    # the nulls are of CKA and k-NN overlap: none when neither is selected
    n_perm = settings.permutations if want_knn or want_cka else 0
    perms, invs = row_permutations(n, n_perm, settings.seed + 2, dev)
    b, p_ = len(weights), len(perms)
    out = SubsampleAnalysis(
        rows,
        {k: np.full(n_layers, _NAN) for k in ks},
        {k: np.full((b, n_layers), _NAN) for k in ks},
        {k: np.full((p_, n_layers), _NAN) for k in ks},
        np.full(n_layers, _NAN),
        np.full(n_layers, _NAN),
        _NAN,
        np.full((b, n_layers), _NAN),
        np.full((b, n_layers), _NAN),
        np.full(b, _NAN),
        np.full((p_, n_layers), _NAN),
    )
    extras = {name: subsample_metric(name) for name in settings.extra_metrics}
    out.extra = {name: np.full(n_layers, _NAN) for name in extras}
    w_dev = torch.from_numpy(weights).to(dev) if b else None
    with _exact_fp32_matmul():
        for i in range(n_layers):
            what = f"hidden state {i}"
            if gathered is not None:
                x = gathered[0][i].to(dev, torch.float32)
                y = gathered[1][i].to(dev, torch.float32)
                gathered[0][i] = gathered[1][i] = None
            else:
                x = xs[i].gather(rows, settings.chunk_size).to(dev, torch.float32)
                y = ys[i].gather(rows, settings.chunk_size).to(dev, torch.float32)
            if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
                raise DataError(f"{what}: NaN or Inf in the subsampled rows")
            nx = und(_neighbours_tensor, x, ks, name=f"base {what}") if ks else None
            ny = (
                und(_neighbours_tensor, y, ks, name=f"reasoning {what}") if nx is not None else None
            )
            jac = {k: jaccard_rows(nx[k], ny[k]) for k in ks} if ny is not None else {}
            for k, jk in jac.items():
                out.knn[k][i] = float(jk.mean())
            if extras:
                xn, yn = x.cpu().numpy(), y.cpu().numpy()
                for name, spec in extras.items():
                    v = und(_extra_value, spec, xn, yn, what)
                    out.extra[name][i] = _NAN if v is None else v
                del xn, yn
            xc, mxs = centred(x)
            yc, mys = centred(y)
            del x, y
            cx = torch.as_tensor(constant_base[i]).to(dev) if constant_base else mxs.constant
            cy = (
                torch.as_tensor(constant_reasoning[i]).to(dev)
                if constant_reasoning
                else mys.constant
            )
            h_inv_here = want_h_inv and i == final
            obs = weighted_pair(xc, yc, None, cx, cy, with_h_inv=h_inv_here)
            out.linear_cka[i], out.dimension_wise_correlation[i] = (
                obs.linear_cka,
                obs.dimension_wise_correlation,
            )
            if h_inv_here:
                out.h_inv_final = obs.h_inv
            if w_dev is not None:
                boot = bootstrap_replicates(w_dev, jac, xc, yc, cx, cy, with_h_inv=h_inv_here)
                for k, reps in boot.knn.items():
                    out.knn_boot[k][:, i] = reps
                out.linear_cka_boot[:, i] = boot.linear_cka
                out.dimension_wise_correlation_boot[:, i] = boot.dimension_wise_correlation
                if h_inv_here:
                    out.h_inv_final_boot[:] = boot.h_inv
            null = permutation_nulls(perms, invs, xc, yc, nx, ny, undefined=und, cka=want_cka)
            for k, reps in null.knn.items():
                out.knn_null[k][:, i] = reps
            out.linear_cka_null[:, i] = null.linear_cka
            del nx, ny, jac, xc, yc
            log.info("subsample analysis: hidden state %d/%d done", i, final)
    out.undefined = und.notes
    out.seconds = time.perf_counter() - t0
    return out


def compare_stores(
    base,
    reasoning,
    settings: HRSASettings | Mapping | None = None,
    *,
    verify: bool = True,
    products: str | None = None,
    accumulate: str | None = None,
) -> HRSAResult:
    """Full HRSA of two activation stores (paths or :class:`~hrsa.activations.ActivationStore`)
    of the same dataset: checks that they are row-aligned, then reads every layer file once
    (the fewest passes the memory allows) for every layer pair and the shared row subsample.
    ``products``, ``accumulate``: see :func:`layerwise_similarity`.

    ``verify`` (default): every file of both stores is checked against its manifest's sha256,
    hashed by the reader threads as the first pass streams it (no extra pass over the data);
    the digests are compared before a result is returned, so a corrupted store is a
    :class:`~hrsa.errors.StoreError` naming the file, never a result. ``False`` skips the
    comparison (benchmarks; open the stores with ``verify_reads=False`` to skip the hashing)."""
    from ..store import ActivationStore, verified

    a = base if isinstance(base, ActivationStore) else ActivationStore(base, verify_reads=verify)
    b = (
        reasoning
        if isinstance(reasoning, ActivationStore)
        else ActivationStore(reasoning, verify_reads=verify)
    )
    with verified(a, b) if verify else contextlib.nullcontext():
        return _compare_stores(a, b, settings, products, accumulate)


def _compare_stores(a, b, settings, products, accumulate) -> HRSAResult:
    from ..store import check_aligned

    if not isinstance(settings, HRSASettings):
        settings = HRSASettings.from_config(settings)
    products = products or settings.products
    accumulate = accumulate or settings.accumulate
    check_aligned(a, b)
    if a.n_hidden_states != b.n_hidden_states:
        raise PairMismatchError(
            f"{a.path} has {a.n_hidden_states} hidden states, {b.path} has "
            f"{b.n_hidden_states}; layer-by-layer HRSA needs equal depth"
        )
    if a.dim != b.dim:
        raise PairMismatchError(
            f"{a.path} has width {a.dim}, {b.path} has {b.dim}; dimension-wise "
            "correlation and Procrustes need equal widths"
        )
    seq_index, position, sequences = a.sequence_index, a.position, a.sequences

    def describe(r: int) -> str:
        return (
            f"sequence {sequences[int(seq_index[r])]['id']!r}, token position "
            f"{int(position[r])} (row {r})"
        )

    xs = [
        Source(a.layer(i), f"{a.path} hidden state {i}", describe) for i in range(a.n_hidden_states)
    ]
    ys = [
        Source(b.layer(i), f"{b.path} hidden state {i}", describe) for i in range(b.n_hidden_states)
    ]
    dev = resolve_device(settings.device)
    log.info(
        "HRSA %s vs %s: N=%d tokens, %d sequences, %d hidden states, D=%d, device %s",
        a.path,
        b.path,
        a.n_rows,
        len(sequences),
        a.n_hidden_states,
        a.dim,
        dev,
    )
    rows = subsample_rows(a.n_rows, settings.knn_max_tokens, settings.seed)
    if settings.computes("knn_overlap"):
        _check_knn_k(settings.knn_k, rows.size)
    lw, stream = _layerwise(
        xs,
        ys,
        chunk_size=settings.chunk_size,
        device=dev,
        accumulator_bytes=settings.accumulator_bytes,
        diagonal=True,
        products=products,
        accumulate=accumulate,
        gather_rows=rows,
        computes=settings.computes,
    )
    gathered = (stream.gathered_x, stream.gathered_y)
    del stream
    log.info(
        "layer-by-layer matrices and the subsample gather done in %.1f s (%d pass(es), "
        "%.2f GB read)",
        lw.seconds,
        lw.passes,
        lw.bytes_read / 1e9,
    )
    ss = subsample_analysis(
        xs,
        ys,
        seq_index,
        len(sequences),
        settings,
        device=dev,
        constant_base=lw.constant_base,
        constant_reasoning=lw.constant_reasoning,
        gathered=gathered,
    )
    log.info("subsample analysis (%d tokens) done in %.1f s", ss.rows.size, ss.seconds)
    return HRSAResult(
        settings, lw, ss, a.n_rows, len(sequences), a.n_hidden_states, a.dim, str(dev)
    )
