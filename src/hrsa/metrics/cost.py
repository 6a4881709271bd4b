"""The cost of one HRSA analysis (one pair x stage x dataset), counted from its sizes.

What it counts, per analysis, from the same quantities the engine plans with (token count N,
hidden states H per model, width D, the k-NN / uncertainty subsample n, bootstrap B,
permutations P, the accumulator budget):

* bytes: each model's store is N * H * D * 2 bytes (fp16); read ``passes`` times;
* FLOPs per phase (multiply-adds counted as 2):
  - ``self``: one Gram X^T X per hidden state and model, 2 * H * 2ND^2;
  - ``cross``: every hidden-state pair, H^2 * 2ND^2 (the full layer-by-layer matrices);
  - ``knn``: exact cosine neighbours on the subsample, 2 * H * 2n^2 D;
  - ``bootstrap``: B replicates of the headline numbers on the subsample, per hidden state i vs
    i; in sample space (the n x n Gram matrices once, then O(n^2) per replicate) when n < D would
    not pay, else as weighted D x D products (3 of them per replicate);
  - ``permutations``: P permuted cross products on the subsample per hidden state;
  - ``procrustes``: one orthogonal polar factor per hidden state (D^3 work).
* accumulator memory: the L x L cross products plus self Grams (fp64 by default, hrsa.accumulate),
  and the passes the engine plans for them (:func:`hrsa.metrics.streaming.plan_passes`: the
  same function, so the counts are the engine's own).

:func:`predict_seconds` turns the counts into wall time from device rates (GEMM throughput and
read bandwidth), assuming the streamed phases overlap reading with computing (the larger of the
two counts). ``benchmarks/scale.py`` measures the rates of the machine it runs on and prints the
predictions for the paper's model sizes; docs/cluster.md quotes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Backbone sizes of the paper's pairs: (width D, hidden states H = decoder layers + 1).
MODEL_SIZES = {
    "1.5B": (1536, 29),  # Qwen2.5-1.5B / DeepSeek-R1-Distill-Qwen-1.5B
    "7B": (3584, 29),  # Qwen2.5-7B / DeepSeek-R1-Distill-Qwen-7B
    "8B": (4096, 37),  # Qwen3-8B
    "14B": (5120, 49),  # Qwen2.5-14B
}


@dataclass(frozen=True)
class AnalysisSize:
    """The sizes of one analysis (both models of the pair have the same D and H)."""

    n_tokens: int = 400_000
    dim: int = 3584
    n_hidden: int = 29
    subsample: int = 50_000  # hrsa.knn_max_tokens: k-NN, bootstrap and permutations
    bootstrap: int = 200
    permutations: int = 50

    @property
    def n(self) -> int:
        return min(self.subsample, self.n_tokens)


@dataclass(frozen=True)
class Cost:
    store_bytes: int  # one model's store
    passes: int
    bytes_read: int  # both stores, all passes
    read_amplification: float  # bytes read / bytes of both stores
    accumulator_bytes: int  # the L x L cross products and the self Grams (fp32)
    flops: dict  # phase -> FLOPs

    def as_dict(self) -> dict:
        return asdict(self)


ITEMSIZE = {"fp64": 8, "fp32": 4}  # hrsa.accumulate


def accumulator_bytes(dim: int, n_hidden: int, accumulate: str = "fp64") -> int:
    """Memory of all H x H cross products plus both models' H self Grams."""
    return (n_hidden * n_hidden + 2 * n_hidden) * dim * dim * ITEMSIZE[accumulate]


def stream_passes(dim: int, n_hidden: int, budget_bytes: int, accumulate: str = "fp64"):
    """The engine's own plan (:func:`hrsa.metrics.streaming.plan_passes`) of the passes whose
    accumulators fit ``budget_bytes``."""
    from .streaming import plan_passes

    itemsize = ITEMSIZE[accumulate]
    return plan_passes(n_hidden, n_hidden, dim, dim, itemsize, budget_bytes)


def passes_needed(dim: int, n_hidden: int, budget_bytes: int, accumulate: str = "fp64") -> int:
    return len(stream_passes(dim, n_hidden, budget_bytes, accumulate))


def layer_files_read(dim: int, n_hidden: int, budget_bytes: int, accumulate: str = "fp64") -> int:
    """Layer files read in all (both models): the first pass reads every file (moments, the
    subsample gather and its accumulators), each later pass only the files its accumulators
    need."""
    passes = stream_passes(dim, n_hidden, budget_bytes, accumulate)
    later = sum(len(x) + len(y) for x, y in (p.layers() for p in passes[1:]))
    return 2 * n_hidden + later


def bootstrap_flops(size: AnalysisSize) -> tuple[float, str]:
    """FLOPs of the bootstrap and which form is cheaper: sample space (two n x n Gram matrices
    per hidden state, then one weighted quadratic form of n^2 per replicate and statistic) or
    weighted D x D products (three per replicate)."""
    n, d, b, h = size.n, size.dim, size.bootstrap, size.n_hidden
    sample_space = h * (2 * 2 * n * n * d + b * 3 * 2 * n * n)
    feature_space = h * b * 3 * 2 * n * d * d
    # H_inv of the final hidden state: one weighted cross product and one polar factor per
    # replicate (hrsa.metrics.uncertainty.bootstrap_replicates)
    h_inv = b * (2 * n * d * d + 30 * d**3)
    if sample_space < feature_space:
        return float(sample_space + h_inv), "sample space"
    return float(feature_space + h_inv), "weighted products"


def analysis_cost(size: AnalysisSize, budget_bytes: int, accumulate: str = "fp64") -> Cost:
    """Bytes, passes and FLOPs of one analysis under an accumulator budget."""
    n_tok, d, h, n = size.n_tokens, size.dim, size.n_hidden, size.n
    store = n_tok * h * d * 2
    passes = passes_needed(d, h, budget_bytes, accumulate)
    bytes_read = layer_files_read(d, h, budget_bytes, accumulate) * n_tok * d * 2
    boot, _ = bootstrap_flops(size)
    flops = {
        "self": float(2 * h * 2 * n_tok * d * d),
        "cross": float(h * h * 2 * n_tok * d * d),
        "knn": float(2 * h * 2 * n * n * d),
        "bootstrap": boot,
        "permutations": float(h * size.permutations * 2 * n * d * d),
        "procrustes": float(h * 30 * d**3),  # ~10 Newton-Schulz steps of 3 D x D products
    }
    return Cost(
        store_bytes=store,
        passes=passes,
        bytes_read=bytes_read,
        read_amplification=bytes_read / (2 * store),
        accumulator_bytes=accumulator_bytes(d, h, accumulate),
        flops=flops,
    )


@dataclass(frozen=True)
class DeviceRates:
    """Achievable rates of a device: GEMM FLOP/s and the read bandwidth of the store path
    (the slower of disk and host-to-device copies), bytes/s, and accumulator memory."""

    name: str
    gemm_flops: float
    read_bytes_per_s: float
    memory_bytes: int
    source: str  # measured here, or the assumption it rests on


def predict_seconds(
    size: AnalysisSize, rates: DeviceRates, budget_fraction: float = 0.8, accumulate: str = "fp64"
) -> dict:
    """Predicted wall time of one analysis on ``rates``: streamed phases (self, cross) take the
    larger of their compute and read times; the subsample phases are compute only."""
    cost = analysis_cost(size, int(rates.memory_bytes * budget_fraction), accumulate)
    streamed = (cost.flops["self"] + cost.flops["cross"]) / rates.gemm_flops
    reading = cost.bytes_read / rates.read_bytes_per_s
    rest = sum(v for k, v in cost.flops.items() if k not in ("self", "cross")) / rates.gemm_flops
    return {
        "device": rates.name,
        "accumulate": accumulate,
        "passes": cost.passes,
        "read_amplification": cost.read_amplification,
        "streamed_compute_seconds": streamed,
        "read_seconds": reading,
        "subsample_seconds": rest,
        "predicted_seconds": max(streamed, reading) + rest,
        "bootstrap_form": bootstrap_flops(size)[1],
        "cost": cost.as_dict(),
        "rates": asdict(rates),
    }
