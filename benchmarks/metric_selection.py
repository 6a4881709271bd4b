"""What leaving a paper metric out of ``hrsa.metrics`` saves in one HRSA job. Prints one JSON
object.

One :func:`hrsa.metrics.compare_stores` of two synthetic fp16 stores (the default config's HRSA
settings: k = 5, 10, 50, bootstrap and permutations as given), run with every metric (the
baseline) and with one selection at a time, alternating, best of ``--repeats``:

* ``no_knn``: ``geometry: [linear_cka]`` - no k-NN search, no k-NN bootstrap or null;
* ``no_procrustes``: ``representation: [dimension_wise_correlation]`` - no polar factors / SVDs;
* ``no_cka``: ``geometry: [knn_overlap]`` - no CKA reductions, no CKA null;
* ``only_cka``: ``representation: [], geometry: [linear_cka]``.

For each: ``seconds`` and ``ratio`` = seconds / baseline seconds (below 1: saved). The one pass
over the stores is shared by every metric, so the pass itself is never saved.

Usage: OMP_NUM_THREADS=1 python benchmarks/metric_selection.py [--tokens N] [--dim D]
[--layers L] [--repeats R] [--bootstrap B] [--permutations P]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hrsa.activations import ActivationStore, write_store
from hrsa.metrics import HRSASettings, compare_stores

SELECTIONS = {
    "all": {},
    "no_knn": {"geometry": ["linear_cka"]},
    "no_procrustes": {"representation": ["dimension_wise_correlation"]},
    "no_cka": {"geometry": ["knn_overlap"]},
    "only_cka": {"representation": [], "geometry": ["linear_cka"]},
}


def make_stores(tmp: Path, tokens: int, dim: int, layers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lens = rng.integers(20, 60, tokens // 20)
    lens = lens[np.cumsum(lens) <= tokens]
    n = int(lens.sum())
    seq = np.repeat(np.arange(len(lens)), lens)
    pos = np.concatenate([np.arange(m) for m in lens])
    tok = rng.integers(0, 500, n)
    base = [rng.standard_normal((n, dim)).astype(np.float32) for _ in range(layers + 1)]
    reason = [b + 0.3 * rng.standard_normal((n, dim)).astype(np.float32) for b in base]
    sequences = [{"id": f"s{j}"} for j in range(len(lens))]
    a = write_store(tmp / "base", base, tok, seq, pos, sequences)
    b = write_store(tmp / "reason", reason, tok, seq, pos, sequences)
    return ActivationStore(a), ActivationStore(b), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=30)
    ap.add_argument("--permutations", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        a, b, n = make_stores(Path(tmp), args.tokens, args.dim, args.layers)
        best = {name: float("inf") for name in SELECTIONS}
        for _ in range(args.repeats):
            for name, selection in SELECTIONS.items():
                settings = HRSASettings(
                    knn_k=[5, 10, 50],
                    knn_max_tokens=4096,
                    bootstrap=args.bootstrap,
                    permutations=args.permutations,
                    device="cpu",
                    metrics=selection,
                )
                t0 = time.perf_counter()
                compare_stores(a, b, settings)
                best[name] = min(best[name], time.perf_counter() - t0)
    base = best["all"]
    print(
        json.dumps(
            {
                "benchmark": "metric_selection",
                "tokens": n,
                "dim": args.dim,
                "hidden_states": args.layers + 1,
                "bootstrap": args.bootstrap,
                "permutations": args.permutations,
                "repeats": args.repeats,
                "threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine(),
                "baseline_seconds": round(base, 3),
                "selections": {
                    name: {
                        "metrics": SELECTIONS[name],
                        "seconds": round(best[name], 3),
                        "ratio": round(best[name] / base, 3),
                    }
                    for name in SELECTIONS
                    if name != "all"
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
