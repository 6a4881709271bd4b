"""Function-level metric (paper 3.4, Appendix B.3): does a linear readout fitted on one model's
sentence embeddings work on the other model's?"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..config import schema_default
from ..errors import ConfigError, DataError
from .output import atomic_write_csv
from .registry import metric
from .streaming import DEFAULT_CHUNK_SIZE, Source

log = logging.getLogger("hrsa.metrics")

#: the probe's defaults are the schema's ``hrsa.probe.*`` (the schema owns every default)
PROBE_SEED = schema_default("hrsa.probe.seed")
PROBE_C = schema_default("hrsa.probe.C")
PROBE_MAX_ITER = schema_default("hrsa.probe.max_iter")
PROBE_ALPHA = schema_default("hrsa.probe.alpha")
#: a numeric target is stratified on this many equal-count quantile bins for the split
PROBE_BINS = 5
#: ``probe_datasets.<key>.target``: class labels -> logistic regression (accuracy, F1);
#: numbers -> ridge regression (R^2)
TASKS = ("class", "numeric")
SPLITS = ("train", "dev", "test")
DIRECTIONS = ("base_to_reasoning", "reasoning_to_base")


def quantile_bins(values, bins: int = PROBE_BINS) -> np.ndarray:
    """The stratum of each value of a numeric target: its quantile bin ``0 .. bins-1`` by rank
    (a stable sort of the values; the i-th smallest of n goes to bin ``floor(i * bins / n)``), so
    the bins hold n/bins values each (+-1), whatever the ties and the distribution."""
    values = np.asarray(values, dtype=np.float64)
    if bins < 1:
        raise ConfigError(f"probe quantile bins must be at least 1, got {bins}")
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values), dtype=np.int64)
    out[order] = (np.arange(len(values)) * bins) // max(len(values), 1)
    return out


def stratified_split(
    labels, *, seed: int = PROBE_SEED, fractions=(0.8, 0.1, 0.1), bins: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/dev/test row indices: within each class (in a seeded shuffle) round
    ``fractions[1]`` and ``fractions[2]`` of its members go to dev and test, the rest to train.
    With ``bins`` the labels are a numeric target and the strata are its ``bins`` quantile bins
    (:func:`quantile_bins`) instead of its values.
    Deterministic for a given seed; each index list is sorted."""
    labels = np.asarray(labels)
    if bins is not None:
        labels = quantile_bins(labels, bins)
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ConfigError(
            f"probe split fractions must be three non-negative numbers summing to 1, "
            f"got {fractions}"
        )
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_dev = int(round(fractions[1] * len(members)))
        n_test = int(round(fractions[2] * len(members)))
        parts[1] += members[:n_dev].tolist()
        parts[2] += members[n_dev : n_dev + n_test].tolist()
        parts[0] += members[n_dev + n_test :].tolist()
    out = tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)
    for name, p in zip(SPLITS, out, strict=True):
        if p.size == 0:
            raise DataError(
                f"cross-model probe: the {name} split is empty ({len(labels)} labelled "
                "sequences are too few for a stratified 80/10/10 split)"
            )
    return out


@dataclass(frozen=True)
class ProbeScore:
    """One row of ``probe.csv``: a probe fitted on the source model of ``direction``, scored on
    ``split`` of the model ``evaluated_on``.

    A class target (``task`` ``class``, logistic regression) fills ``accuracy``, ``macro_f1``
    and ``weighted_f1``; a numeric target (``task`` ``numeric``, ridge regression) fills ``r2``
    and ``r2_drop``: the same probe's R^2 on the same split of its source model minus this
    row's (0 on the source model's own rows)."""

    direction: str
    split: str
    evaluated_on: str
    accuracy: float | None
    macro_f1: float | None
    weighted_f1: float | None
    r2: float | None = None
    r2_drop: float | None = None
    task: str = "class"


#: the columns of a classification ``probe.csv`` (exactly these, as before the ridge probe);
#: a regression ``probe.csv`` appends :data:`REGRESSION_COLUMNS`
CLASS_COLUMNS = ("direction", "split", "evaluated_on", "accuracy", "macro_f1", "weighted_f1")
REGRESSION_COLUMNS = ("r2", "r2_drop", "task")


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _transfer_accuracy(rows: list[ProbeScore]) -> float:
    """Mean accuracy of the base-fitted probe on the reasoning model (registry scalar)."""
    return float(
        np.mean(
            [
                r.accuracy
                for r in rows
                if r.direction == "base_to_reasoning" and r.evaluated_on == "reasoning"
            ]
        )
    )


@metric(
    level="function",
    needs_labels=True,
    invariant=("isotropic_scale",),
    variant=("rotation", "permutation", "translation", "anisotropic_scale", "general_linear"),
    scalar=lambda X, Y, labels: _transfer_accuracy(cross_model_probe(X, Y, labels)),
    notes="Sentence embeddings are L2-normalised first, so a global scale is irrelevant; the "
    "probe's weights and the reused scaler are tied to the source model's coordinates, so "
    "rotating, shifting or stretching one model changes what transfers (mildly for a shift or "
    "a diagonal stretch, completely for a rotation). "
    "Registry scalar: mean accuracy of the base-fitted probe on the reasoning model (class "
    "labels, the default task; with task='numeric' the probe is a ridge regression scored by "
    "R^2, whose rows have no accuracy).",
)
def cross_model_probe(
    base,
    reasoning,
    labels,
    *,
    seed: int = PROBE_SEED,
    C: float = PROBE_C,
    max_iter: int = PROBE_MAX_ITER,
    fractions=(0.8, 0.1, 0.1),
    task: str = "class",
    alpha: float = PROBE_ALPHA,
) -> list[ProbeScore]:
    """Cross-model linear probes (paper Eq. 6): fit y_hat = X W_X + b_X on one model's sentence
    embeddings and apply the frozen (W_X, b_X) to the other model's.

    Protocol: rows are L2-normalised sentence embeddings (normalised again here);
    one stratified 80/10/10 split with ``seed``; a StandardScaler fitted on the source model's
    train split is reused, unchanged, on the target model; LogisticRegression(C, lbfgs,
    max_iter, random_state=seed). Both directions; accuracy, macro- and weighted-F1 on
    train/dev/test of both models: 2 x 3 x 2 = 12 rows (docs/contracts.md, contract 2).

    ``task="numeric"`` (a numeric target, paper 3.4.1's "ridge regression, depending on the
    task"): the same embeddings, scaler and directions; the split is stratified on
    :data:`PROBE_BINS` quantile bins of the target; Ridge(alpha) (``C`` and ``max_iter`` are
    not used); the 12 rows carry R^2 (``r2``) and the drop ``r2_drop`` (R^2 of the same probe
    on the same split of its source model minus the row's) and leave the accuracy and F1
    empty.
    """
    if task not in TASKS:
        raise ConfigError(f"cross-model probe: task must be one of {TASKS}, got {task!r}")
    emb = {"base": _as_numpy(base, "base"), "reasoning": _as_numpy(reasoning, "reasoning")}
    if task == "numeric":
        try:
            y = np.asarray(labels, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(
                f"cross-model probe: a numeric target must be numbers ({error})"
            ) from error
    else:
        y = np.asarray(labels)
    n = len(y)
    for name, e in emb.items():
        if e.ndim != 2 or e.shape[0] != n:
            raise DataError(
                f"cross-model probe: {name} embeddings have shape {e.shape}, expected "
                f"({n}, D) to match the labels"
            )
        if not np.isfinite(e).all():
            raise DataError(f"cross-model probe: NaN/Inf in the {name} sentence embeddings")
    if emb["base"].shape[1] != emb["reasoning"].shape[1]:
        raise DataError("cross-model probe: the two models' embeddings differ in width")
    if task == "numeric":
        return _ridge_probe(emb, y, seed=seed, alpha=alpha, fractions=fractions)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y)) < 2:
        raise DataError("cross-model probe: needs at least two classes")
    emb = {k: _l2_normalise(v) for k, v in emb.items()}
    split = dict(zip(SPLITS, stratified_split(y, seed=seed, fractions=fractions), strict=True))
    rows = []
    for direction in DIRECTIONS:
        source = "base" if direction == "base_to_reasoning" else "reasoning"
        scaler = StandardScaler().fit(emb[source][split["train"]])
        probe = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            probe.fit(scaler.transform(emb[source][split["train"]]), y[split["train"]])
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                log.warning(
                    "cross-model probe (%s): lbfgs did not converge in %d iterations",
                    direction,
                    max_iter,
                )
        for name in SPLITS:
            for target in ("base", "reasoning"):
                idx = split[name]
                pred = probe.predict(scaler.transform(emb[target][idx]))
                rows.append(
                    ProbeScore(
                        direction,
                        name,
                        target,
                        float(accuracy_score(y[idx], pred)),
                        float(f1_score(y[idx], pred, average="macro", zero_division=0)),
                        float(f1_score(y[idx], pred, average="weighted", zero_division=0)),
                    )
                )
    return rows


def _ridge_probe(
    emb: dict[str, np.ndarray], y: np.ndarray, *, seed: int, alpha: float, fractions
) -> list[ProbeScore]:
    """The numeric-target branch of :func:`cross_model_probe` (validated inputs)."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    if not np.isfinite(y).all():
        raise DataError("cross-model probe: NaN/Inf in the numeric target")
    if len(np.unique(y)) < 2:
        raise DataError("cross-model probe: a numeric target needs at least two distinct values")
    if not alpha > 0:
        raise ConfigError(f"cross-model probe: the ridge alpha must be > 0, got {alpha}")
    emb = {k: _l2_normalise(v) for k, v in emb.items()}
    parts = stratified_split(y, seed=seed, fractions=fractions, bins=PROBE_BINS)
    split = dict(zip(SPLITS, parts, strict=True))
    rows = []
    for direction in DIRECTIONS:
        source = "base" if direction == "base_to_reasoning" else "reasoning"
        scaler = StandardScaler().fit(emb[source][split["train"]])
        probe = Ridge(alpha=alpha).fit(
            scaler.transform(emb[source][split["train"]]), y[split["train"]]
        )
        for name in SPLITS:
            idx = split[name]
            r2 = {
                target: float(r2_score(y[idx], probe.predict(scaler.transform(emb[target][idx]))))
                for target in ("base", "reasoning")
            }
            for target in ("base", "reasoning"):
                rows.append(
                    ProbeScore(
                        direction,
                        name,
                        target,
                        None,
                        None,
                        None,
                        r2=r2[target],
                        r2_drop=r2[source] - r2[target],
                        task="numeric",
                    )
                )
    return rows


def _as_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def sentence_embeddings(
    layer,
    sequence_index,
    n_sequences: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    normalise: bool = True,
) -> np.ndarray:
    """Mean over each sequence's rows of an (N, D) token matrix (fp64 sums, streamed), then
    L2-normalised: the sentence embeddings of the cross-model probe."""
    src = Source(layer, "hidden state")
    seq = torch.from_numpy(np.asarray(sequence_index, dtype=np.int64))
    if seq.shape[0] != src.n_rows:
        raise DataError(f"sequence_index has {seq.shape[0]} rows, the layer {src.n_rows}")
    if seq.numel() and (int(seq.min()) < 0 or int(seq.max()) >= n_sequences):
        raise DataError(f"sequence_index outside 0..{n_sequences - 1}")
    sums = torch.zeros(n_sequences, src.dim, dtype=torch.float64)
    for a, raw in src.chunks(chunk_size):
        sums.index_add_(0, seq[a : a + raw.shape[0]], raw.to("cpu", torch.float64))
    counts = torch.bincount(seq, minlength=n_sequences).to(torch.float64)
    if bool((counts == 0).any()):
        raise DataError(f"sequence {int((counts == 0).nonzero()[0])} has no rows; cannot mean-pool")
    if not bool(torch.isfinite(sums).all()):
        raise DataError("NaN/Inf in the hidden states; cannot mean-pool")
    mean = (sums / counts[:, None]).numpy()
    return _l2_normalise(mean) if normalise else mean


def probe_stores(
    base,
    reasoning,
    *,
    seed: int = PROBE_SEED,
    C: float = PROBE_C,
    max_iter: int = PROBE_MAX_ITER,
    task: str = "class",
    alpha: float = PROBE_ALPHA,
) -> list[ProbeScore]:
    """Cross-model probe on two aligned activation stores: sentence embeddings from the last
    hidden state, labels from the stores' sequence records. ``task="numeric"``: the labels are
    a numeric target (numbers, or strings that parse as finite numbers) and the probe is a
    ridge regression (:func:`cross_model_probe`).

    Every file of both stores is verified against its manifest (:func:`hrsa.store.verified`):
    the last layer and the index files as they are read, the other layer files, which the
    probe does not read, hashed at the end; a corrupted store is a
    :class:`~hrsa.errors.StoreError` naming the file, never a probe result."""
    return probe_and_metrics(
        base, reasoning, seed=seed, C=C, max_iter=max_iter, task=task, alpha=alpha
    )[0]


def probe_and_metrics(
    base,
    reasoning,
    *,
    seed: int = PROBE_SEED,
    C: float = PROBE_C,
    max_iter: int = PROBE_MAX_ITER,
    task: str = "class",
    alpha: float = PROBE_ALPHA,
    extra_metrics: Sequence[str] = (),
) -> tuple[list[ProbeScore], dict[str, float]]:
    """:func:`probe_stores`, and the registered metrics that need labels
    (``hrsa.probe.extra_metrics``, e.g. ``behavioural_consistency``) on the same sentence
    embeddings and class labels: ``(rows, {metric: value})``. The probe's ``seed``, ``C`` and
    ``max_iter`` are passed to a metric that takes them (the same split and classifier). A
    numeric target has no classes: its metrics dict is empty (logged)."""
    from ..store import ActivationStore, verified
    from .registry import labelled_metric

    specs = [labelled_metric(name) for name in extra_metrics]
    a = base if isinstance(base, ActivationStore) else ActivationStore(base)
    b = reasoning if isinstance(reasoning, ActivationStore) else ActivationStore(reasoning)
    with verified(a, b):
        emb, labels = _probe_inputs(a, b, task=task)
        rows = cross_model_probe(
            emb[0], emb[1], labels, seed=seed, C=C, max_iter=max_iter, task=task, alpha=alpha
        )
        values = {}
        if specs and task == "numeric":
            log.info("labelled extra metrics need class labels: none for a numeric target")
        elif specs:
            protocol = {"seed": seed, "C": C, "max_iter": max_iter}
            for spec in specs:
                accepted = inspect.signature(spec.function).parameters
                kw = {k: v for k, v in protocol.items() if k in accepted}
                try:
                    values[spec.name] = float(spec.function(emb[0], emb[1], labels, **kw))
                except DataError as exc:
                    raise DataError(f"{spec.name} on {a.path} vs {b.path}: {exc}") from exc
                log.info("%s = %.4f", spec.name, values[spec.name])
    return rows, values


def _probe_inputs(a, b, *, task) -> tuple[list[np.ndarray], np.ndarray]:
    """The two stores' sentence embeddings (mean over each sequence's tokens, last hidden
    state) and their labels, checked aligned and labelled."""
    from ..store import check_aligned

    check_aligned(a, b)
    seqs = a.sequences
    missing = [s["id"] for s in seqs if s.get("label") is None]
    if missing:
        raise DataError(
            f"{a.path}: sequence {missing[0]!r} (and {len(missing) - 1} more) has no "
            "label; the cross-model probe needs a labelled dataset"
        )
    if task == "numeric":
        labels = np.asarray(
            [_numeric_label(s, a.path / "sequences.json") for s in seqs], dtype=np.float64
        )
    else:
        labels = np.asarray([s["label"] for s in seqs])
    emb = [
        sentence_embeddings(s.layer(s.n_hidden_states - 1), s.sequence_index, len(seqs))
        for s in (a, b)
    ]
    if task == "numeric":
        log.info(
            "cross-model ridge probe on %d sequences, target %.4g .. %.4g",
            len(labels),
            labels.min(),
            labels.max(),
        )
    else:
        log.info(
            "cross-model probe on %d sequences, %d classes", len(labels), len(np.unique(labels))
        )
    return emb, labels


def _numeric_label(record: dict, where) -> float:
    """A sequence record's label as a finite float (a number or a numeric string; not a bool)."""
    value = record["label"]
    number = None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not np.isfinite(number):
        raise DataError(
            f"{where}: sequence {record['id']!r} has label {value!r}, not a finite number; a "
            "numeric probe target (probe_datasets.<key>.target: numeric) needs numeric labels"
        )
    return number


def write_probe_metrics_csv(values: Mapping[str, float], path: str | os.PathLike) -> Path:
    """Atomically write ``probe_metrics.csv``: ``metric,value``, one row per labelled extra
    metric (none for a numeric target)."""
    return atomic_write_csv(
        path, ["metric", "value"], [{"metric": k, "value": v} for k, v in values.items()]
    )


def write_probe_csv(rows: list[ProbeScore], path: str | os.PathLike) -> Path:
    """Atomically write ``probe.csv``: direction,split,evaluated_on,accuracy,macro_f1,weighted_f1
    (:data:`CLASS_COLUMNS`) for a class target, exactly as before the ridge probe; rows of a
    numeric target append ``r2,r2_drop,task`` (:data:`REGRESSION_COLUMNS`), their accuracy and
    F1 cells empty."""
    names = [f.name for f in fields(ProbeScore)]  # CLASS_COLUMNS + REGRESSION_COLUMNS
    if all(r.task == "class" for r in rows):
        names = list(CLASS_COLUMNS)
    return atomic_write_csv(path, names, [asdict(r) for r in rows])
