"""Function-level metric (paper 3.4, Appendix B.3): does a linear readout fitted on one model's
sentence embeddings work on the other model's?"""

from __future__ import annotations

import logging
import os
import warnings
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
SPLITS = ("train", "dev", "test")
DIRECTIONS = ("base_to_reasoning", "reasoning_to_base")


def stratified_split(
    labels, *, seed: int = PROBE_SEED, fractions=(0.8, 0.1, 0.1)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/dev/test row indices: within each class (in a seeded shuffle) round
    ``fractions[1]`` and ``fractions[2]`` of its members go to dev and test, the rest to train.
    Deterministic for a given seed; each index list is sorted."""
    labels = np.asarray(labels)
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
    ``split`` of the model ``evaluated_on``."""

    direction: str
    split: str
    evaluated_on: str
    accuracy: float
    macro_f1: float
    weighted_f1: float


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
    "Registry scalar: mean accuracy of the base-fitted probe on the reasoning model.",
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
) -> list[ProbeScore]:
    """Cross-model linear probes (paper Eq. 6): fit y_hat = X W_X + b_X on one model's sentence
    embeddings and apply the frozen (W_X, b_X) to the other model's.

    Protocol: rows are L2-normalised sentence embeddings (normalised again here);
    one stratified 80/10/10 split with ``seed``; a StandardScaler fitted on the source model's
    train split is reused, unchanged, on the target model; LogisticRegression(C, lbfgs,
    max_iter, random_state=seed). Both directions; accuracy, macro- and weighted-F1 on
    train/dev/test of both models: 2 x 3 x 2 = 12 rows (docs/contracts.md, contract 2).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    emb = {"base": _as_numpy(base, "base"), "reasoning": _as_numpy(reasoning, "reasoning")}
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
) -> list[ProbeScore]:
    """Cross-model probe on two aligned activation stores: sentence embeddings from the last
    hidden state, labels from the stores' sequence records."""
    from ..activations import ActivationStore, check_aligned

    a = base if isinstance(base, ActivationStore) else ActivationStore(base)
    b = reasoning if isinstance(reasoning, ActivationStore) else ActivationStore(reasoning)
    check_aligned(a, b)
    seqs = a.sequences
    missing = [s["id"] for s in seqs if s.get("label") is None]
    if missing:
        raise DataError(
            f"{a.path}: sequence {missing[0]!r} (and {len(missing) - 1} more) has no "
            "label; the cross-model probe needs a labelled dataset"
        )
    labels = np.asarray([s["label"] for s in seqs])
    emb = [
        sentence_embeddings(s.layer(s.n_hidden_states - 1), s.sequence_index, len(seqs))
        for s in (a, b)
    ]
    log.info("cross-model probe on %d sequences, %d classes", len(labels), len(np.unique(labels)))
    return cross_model_probe(emb[0], emb[1], labels, seed=seed, C=C, max_iter=max_iter)


def write_probe_csv(rows: list[ProbeScore], path: str | os.PathLike) -> Path:
    """Atomically write ``probe.csv``: direction,split,evaluated_on,accuracy,macro_f1,weighted_f1."""
    names = [f.name for f in fields(ProbeScore)]
    return atomic_write_csv(path, names, [asdict(r) for r in rows])
