"""Speed and memory of the HRSA engine (issue 3, item 8). Prints one JSON object.

All ratios are measured in one run, on the same synthetic stores, on this machine:

* layer_by_layer: the streaming engine (:func:`hrsa.metrics.layerwise_similarity`, full
  (L+1) x (L+1) linear CKA and dimension-wise correlation, read from fp16 stores on disk) against
  the per-pair recomputation pattern of the authors' code (both layers in memory, centred and
  multiplied from scratch for every pair: three products per pair); results must agree to 1e-6;
* gflops: floating-point rate over the products the engine must do (one cross product per
  pair, one self product per layer and model) against a plain numpy fp32 matmul of the same
  (N x D)^T (N x D) shape;
* knn: exact cosine neighbour sets against scikit-learn's brute-force cosine search;
* knn_cost_of_exactness: time of the exact k-NN search (fp64 answer at fp32 GEMM cost) over
  the previous plain fp32 search, on the same rows with and without a large offset shared by
  every row in one feature (where the fp32 sets differ from the fp64 ones);
* memory: peak RSS of the engine (in a fresh subprocess) on the store and on one with four
  times as many tokens.

Usage: OMP_NUM_THREADS=1 python benchmarks/hrsa_engine.py [--quick] [--tokens N] [--dim D] ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_stores(root: Path, n_tokens: int, dim: int, n_layers: int, seed: int = 0):
    """Two related fp16 stores (a shared random walk over layers, per-model drift)."""
    from hrsa.activations import StoreWriter

    rng = np.random.default_rng(seed)
    lengths = rng.integers(16, 128, n_tokens // 16)
    lengths = lengths[np.cumsum(lengths) <= n_tokens]
    lengths = np.append(lengths, n_tokens - lengths.sum()).astype(int)
    lengths = lengths[lengths > 0]
    seq = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.concatenate([np.arange(m) for m in lengths])
    tok = rng.integers(0, 5000, n_tokens)
    sequences = [{"id": f"s{i}", "label": int(i % 4)} for i in range(len(lengths))]
    mixes = [
        np.eye(dim) + rng.standard_normal((dim, dim)) / (3 * np.sqrt(dim)) for _ in range(n_layers)
    ]
    drift = [
        np.eye(dim) + 0.05 * i * rng.standard_normal((dim, dim)) / np.sqrt(dim)
        for i in range(n_layers)
    ]
    offset = 20.0 * rng.standard_normal(dim)
    writers = [StoreWriter(root / name, n_tokens, dim, n_layers, "float16") for name in ("a", "b")]
    block = 4096
    for start in range(0, n_tokens, block):
        stop = min(start + block, n_tokens)
        h = rng.standard_normal((stop - start, dim))
        layers_a, layers_b = [], []
        for i in range(n_layers):
            h = np.tanh(h @ mixes[i]) + 0.1 * rng.standard_normal(h.shape)
            layers_a.append((h + offset).astype(np.float32))
            layers_b.append((h @ drift[i] + 0.05 * rng.standard_normal(h.shape)).astype(np.float32))
        idx = slice(start, stop)
        writers[0].append(layers_a, tok[idx], seq[idx], pos[idx])
        writers[1].append(layers_b, tok[idx], seq[idx], pos[idx])
    return [
        w.commit(sequences, {"model": name, "dataset": "benchmark"})
        for w, name in zip(writers, ("a", "b"), strict=True)
    ]


def per_pair_recomputation(xs, ys):
    """The authors' pattern: for every layer pair, centre both layers and compute CKA and the
    dimension-wise correlation from scratch (three D x D products per pair), fp32 torch."""
    import torch

    la, lb = len(xs), len(ys)
    cka, corr = np.zeros((la, lb)), np.zeros((la, lb))
    for i in range(la):
        for j in range(lb):
            x = xs[i] - xs[i].mean(0, keepdim=True)
            y = ys[j] - ys[j].mean(0, keepdim=True)
            xy, xx, yy = x.T @ y, x.T @ x, y.T @ y
            cka[i, j] = float((xy**2).sum() / torch.sqrt((xx**2).sum() * (yy**2).sum()))
            num = (x * y).sum(0)
            den = torch.sqrt((x * x).sum(0) * (y * y).sum(0))
            corr[i, j] = float((num / den).mean())
    return cka, corr


def numpy_matmul_gflops(n: int, d: int, seconds: float = 3.0) -> float:
    """Aggregate rate of back-to-back fp32 numpy products (N x D)^T (N x D) over ``seconds``
    (an aggregate, like the engine's, not a best case)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, d), dtype=np.float32)
    b = rng.standard_normal((n, d), dtype=np.float32)
    a.T @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a.T @ b
        count += 1
    return 2.0 * n * d * d * count / (time.perf_counter() - t0) / 1e9


def knn_comparison(z: np.ndarray, k: int) -> dict:
    from sklearn.neighbors import NearestNeighbors

    from hrsa.metrics import nearest_neighbours

    t0 = time.perf_counter()
    ours = nearest_neighbours(z, k)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(z)
    ref = np.sort(nn.kneighbors(return_distance=False), 1)
    t_sklearn = time.perf_counter() - t0
    differ = np.flatnonzero((ours != ref).any(1))
    # a differing row is acceptable only if the swapped neighbours are tied in exact arithmetic
    z64 = z.astype(np.float64)
    z64 /= np.linalg.norm(z64, axis=1, keepdims=True)
    worst_gap = 0.0
    for r in differ:
        only_ours = np.setdiff1d(ours[r], ref[r])
        only_ref = np.setdiff1d(ref[r], ours[r])
        sims = z64[[r]] @ z64.T
        worst_gap = max(worst_gap, float(abs(sims[0, only_ours].min() - sims[0, only_ref].max())))
    return {
        "rows": int(z.shape[0]),
        "dim": int(z.shape[1]),
        "k": k,
        "seconds_ours": round(t_ours, 3),
        "seconds_sklearn_brute_cosine": round(t_sklearn, 3),
        "speedup": round(t_sklearn / t_ours, 2),
        "identical_sets": bool(differ.size == 0),
        "rows_differing": int(differ.size),
        "differing_rows_max_similarity_gap": worst_gap,
    }


def knn_cost_of_exactness(z: np.ndarray, ks, offset: float, repeats: int = 2) -> dict:
    """The exact k-NN search (shifted fp32 screen + fp64 boundary, issue 11) against the
    previous plain fp32 search, on the same rows in the same run: without an offset, and with
    ``offset`` added to one feature of every row (a massive activation), stored as fp16 like
    the activation stores. Best of ``repeats`` runs each, interleaved."""
    import torch

    from hrsa.metrics.geometry import _neighbours_fp32, _neighbours_tensor

    plain = torch.from_numpy(np.asarray(z, dtype=np.float16).astype(np.float32))
    shifted = plain.clone()
    shifted[:, 0] += offset
    shifted = shifted.half().float()
    result: dict = {"ks": list(ks), "offset_feature_0": offset, "repeats": repeats}
    for label, data in (("without_offset", plain), ("with_offset", shifted)):
        times = {"exact": [], "fp32": []}
        for _ in range(repeats):
            for name, search in (("exact", _neighbours_tensor), ("fp32", _neighbours_fp32)):
                t0 = time.perf_counter()
                sets = search(data, ks)
                times[name].append(time.perf_counter() - t0)
                if name == "exact":
                    exact = sets
                else:
                    fp32 = sets
        t_exact, t_fp32 = min(times["exact"]), min(times["fp32"])
        result[label] = {
            "seconds_exact": round(t_exact, 3),
            "seconds_fp32": round(t_fp32, 3),
            "ratio_exact_to_fp32": round(t_exact / t_fp32, 3),
            "rows_where_fp32_sets_differ": {
                str(k): int((exact[k] != fp32[k]).any(1).sum()) for k in ks
            },
        }
    return result


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def memory_child(base: str, reason: str, chunk_size: int) -> None:
    """Run the layer-by-layer engine on two stores; print its peak RSS (MiB) as JSON.

    The peak is the kernel's high-water mark (VmHWM) reset after the imports (Linux
    /proc/self/clear_refs), so importing torch does not hide the engine's own peak."""
    import torch  # noqa: F401  (imported before the baseline measurement)

    from hrsa.activations import ActivationStore
    from hrsa.metrics import layerwise_similarity

    a, b = ActivationStore(base), ActivationStore(reason)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        method = "VmHWM reset after imports"
    except OSError:
        method = "ru_maxrss (includes the imports)"
    before = _status_mib("VmRSS")
    t0 = time.perf_counter()
    layerwise_similarity(
        [a.layer(i) for i in range(a.n_hidden_states)],
        [b.layer(i) for i in range(b.n_hidden_states)],
        chunk_size=chunk_size,
        device="cpu",
    )
    seconds = time.perf_counter() - t0
    peak = _status_mib("VmHWM") if method.startswith("VmHWM") else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rss_before_mib": round(before or 0.0, 1),
                "peak_rss_mib": round(peak, 1),
                "engine_peak_increment_mib": round(peak - (before or 0.0), 1),
                "method": method,
                "seconds": round(seconds, 2),
                "n_tokens": a.n_rows,
            }
        )
    )


def run_child(stores, chunk_size: int, env: dict | None = None) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-child",
            str(stores[0]),
            str(stores[1]),
            "--chunk-size",
            str(chunk_size),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_comparison(small_stores, big_stores, chunk_size: int, factor: int) -> dict:
    """Engine peak on the store and on one ``factor`` times larger, in fresh subprocesses;
    once with glibc's default allocator (whose dynamic mmap threshold keeps freed blocks in
    the heap, which adds noise) and once with a fixed threshold (live memory only)."""
    result = {}
    for label, env in (
        ("default_allocator", None),
        ("fixed_glibc_mmap_threshold", {"MALLOC_MMAP_THRESHOLD_": "131072"}),
    ):
        small = run_child(small_stores, chunk_size, env)
        big = run_child(big_stores, chunk_size, env)
        result[label] = {
            "store": small,
            f"store_x{factor}": big,
            "peak_ratio": round(big["peak_rss_mib"] / small["peak_rss_mib"], 3),
            "engine_increment_ratio": round(
                big["engine_peak_increment_mib"] / max(small["engine_peak_increment_mib"], 1e-9), 3
            ),
        }
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: runs in seconds")
    p.add_argument("--tokens", type=int, help="N (default 8192; quick 2048)")
    p.add_argument("--dim", type=int, help="D (default 512; quick 128)")
    p.add_argument("--layers", type=int, help="hidden states L+1 (default 13; quick 5)")
    p.add_argument("--k", type=int, default=50, help="k of the k-NN comparison")
    p.add_argument("--knn-tokens", type=int, help="rows of the k-NN comparison (default N)")
    p.add_argument(
        "--knn-offset",
        type=float,
        default=1e4,
        help="shared offset of one feature in the k-NN cost-of-exactness run (default 1e4)",
    )
    p.add_argument("--chunk-size", type=int, help="token chunk (default 4096; quick 512)")
    p.add_argument("--memory-factor", type=int, default=4)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-child", nargs=2, metavar=("BASE", "REASON"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child, args.chunk_size or 4096)
        return {}

    import torch

    from hrsa.activations import ActivationStore
    from hrsa.metrics import layerwise_similarity

    n = args.tokens or (2048 if args.quick else 8192)
    d = args.dim or (128 if args.quick else 512)
    n_layers = args.layers or (5 if args.quick else 13)
    args.chunk_size = args.chunk_size or (512 if args.quick else 4096)
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "sizes": {"tokens": n, "dim": d, "hidden_states": n_layers, "chunk_size": args.chunk_size},
    }
    with tempfile.TemporaryDirectory(prefix="hrsa-bench-") as tmp:
        stores = make_stores(Path(tmp) / "x1", n, d, n_layers)
        a, b = ActivationStore(stores[0]), ActivationStore(stores[1])
        xs = [a.layer(i) for i in range(n_layers)]
        ys = [b.layer(i) for i in range(n_layers)]

        # --- layer by layer vs per-pair recomputation ----------------------------------------
        layerwise_similarity(xs[:1], ys[:1], device="cpu")  # warm up (page cache, BLAS)
        t0 = time.perf_counter()
        ours = layerwise_similarity(
            xs, ys, chunk_size=args.chunk_size, device="cpu", diagonal=False
        )
        t_ours = time.perf_counter() - t0
        mem_x = [torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in xs]
        mem_y = [torch.from_numpy(np.asarray(y, dtype=np.float32)) for y in ys]
        t0 = time.perf_counter()
        cka_ref, corr_ref = per_pair_recomputation(mem_x, mem_y)
        t_ref = time.perf_counter() - t0
        del mem_x, mem_y
        report["layer_by_layer"] = {
            "seconds_layer_by_layer": round(t_ours, 3),
            "seconds_per_pair_recomputation": round(t_ref, 3),
            "speedup": round(t_ref / t_ours, 2),
            "max_abs_diff_linear_cka": float(np.abs(ours.linear_cka - cka_ref).max()),
            "max_abs_diff_dimension_wise_correlation": float(
                np.abs(ours.dimension_wise_correlation - corr_ref).max()
            ),
            "equal_to_1e-6": bool(
                np.allclose(ours.linear_cka, cka_ref, rtol=0, atol=1e-6)
                and np.allclose(ours.dimension_wise_correlation, corr_ref, rtol=0, atol=1e-6)
            ),
            "note": "layer-by-layer reads fp16 stores from disk; the recomputation gets fp32 "
            "layers already in memory",
        }

        # --- achieved rate vs plain matmul ---------------------------------------------------
        products = n_layers * n_layers + 2 * n_layers
        flops = 2.0 * n * d * d * products
        achieved = flops / t_ours / 1e9
        reference = numpy_matmul_gflops(n, d)
        report["gflops"] = {
            "products": products,
            "gflop": round(flops / 1e9, 2),
            "achieved_gflops": round(achieved, 2),
            "numpy_matmul_gflops": round(reference, 2),
            "fraction_of_numpy_matmul": round(achieved / reference, 3),
        }

        # --- k-NN ----------------------------------------------------------------------------
        rows = min(args.knn_tokens or n, n)
        z = np.asarray(ys[-1][:rows], dtype=np.float32)
        report["knn"] = knn_comparison(z, min(args.k, rows - 1))
        ks = sorted({k for k in (5, 10, args.k) if k < rows})
        report["knn_cost_of_exactness"] = knn_cost_of_exactness(z, ks, args.knn_offset)

        # --- peak memory, 1x vs 4x tokens ----------------------------------------------------
        if not args.skip_memory:
            big_stores = make_stores(Path(tmp) / "x4", args.memory_factor * n, d, n_layers)
            report["memory"] = {
                "store_bytes_per_model": a.n_rows * d * 2 * n_layers,
                **memory_comparison(stores, big_stores, args.chunk_size, args.memory_factor),
            }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
