"""Speed and memory of the HRSA engine (issue 3, item 8). Prints one JSON object.

All ratios are measured in one run, on the same synthetic stores, on this machine:

* layer_by_layer: the one-pass engine (:func:`hrsa.metrics.layerwise_similarity`, full
  (L+1) x (L+1) linear CKA and dimension-wise correlation, read from fp16 stores on disk) against
  the engine at ``--baseline-ref`` (separate passes for moments, self terms and each block of
  cross products; run from a ``git archive`` of that commit in a fresh subprocess, alternating
  with this engine, best of ``--repeats``) and the per-pair recomputation pattern of the authors'
  code (both layers in memory, centred and multiplied from scratch for every pair: three
  products per pair); results must agree to 1e-6;
* analysis: one whole :func:`hrsa.metrics.compare_stores` (layer-by-layer phase, k-NN search,
  bootstrap and permutation nulls; by default the paper's B=200, P=50 on a 4096-row subsample)
  by this engine and by the engine at ``--baseline-ref`` (default: the commit before issue 13,
  unpacked with ``git archive``), each in a fresh subprocess, in this run; ``read_amplification``
  = bytes read from the layer files / the layer files' bytes (1.0: every file read once),
  counted on ``os.preadv``; every value of both against each other (k-NN sets exactly) and the
  layer-by-layer values against an fp64 in-memory reference;
* numerics: the accumulation schemes against fp64 on data with massive activations (+-3000
  offsets on a few features, +-3000 spikes on 0.5% of the tokens, fp16): fp64 accumulators
  (the default), fp32 accumulators updated in place, and TF32 / bf16 products (emulated by
  rounding the shifted inputs of each product to 10 / 7 mantissa bits: their numerical effect,
  measured on a CPU);
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


def fp64_reference(xs, ys) -> dict:
    """Linear CKA and dimension-wise correlation of every layer pair, H_inv and debiased CKA
    per layer, in fp64 from the layers in memory (numpy, centred, one product per pair)."""
    import math

    cen = [np.asarray(x, dtype=np.float64) for x in xs]
    cen = [x - x.mean(0) for x in cen]
    ceny = [np.asarray(y, dtype=np.float64) for y in ys]
    ceny = [y - y.mean(0) for y in ceny]
    gx = [x.T @ x for x in cen]
    gy = [y.T @ y for y in ceny]
    la, lb, n = len(xs), len(ys), cen[0].shape[0]
    cka, corr = np.zeros((la, lb)), np.zeros((la, lb))
    h_inv, deb = np.zeros(min(la, lb)), np.zeros(min(la, lb))
    for i in range(la):
        for j in range(lb):
            c = cen[i].T @ ceny[j]
            cka[i, j] = (c**2).sum() / math.sqrt((gx[i] ** 2).sum() * (gy[j] ** 2).sum())
            corr[i, j] = np.mean(np.diag(c) / np.sqrt(np.diag(gx[i]) * np.diag(gy[j])))
            if i == j:
                u, _, vh = np.linalg.svd(c)
                p = (u @ vh) ** 2
                p /= p.sum(1, keepdims=True)
                ent = -(p * np.log(np.where(p > 0, p, 1))).sum(1).mean()
                h_inv[i] = 1 - ent / math.log(p.shape[0])
                rx, ry = (cen[i] ** 2).sum(1), (ceny[j] ** 2).sum(1)

                def hsic(frob, rr, tx, ty):
                    return frob - rr + tx * ty / ((n - 1) * (n - 2)) - 2 / (n - 2) * rr

                hxy = hsic((c**2).sum(), rx @ ry, rx.sum(), ry.sum())
                hxx = hsic((gx[i] ** 2).sum(), rx @ rx, rx.sum(), rx.sum())
                hyy = hsic((gy[j] ** 2).sum(), ry @ ry, ry.sum(), ry.sum())
                deb[i] = hxy / math.sqrt(hxx * hyy)
    return {
        "linear_cka": cka,
        "dimension_wise_correlation": corr,
        "debiased_cka": deb,
        "procrustes_h_inv": h_inv,
    }


def _max_diff(a: dict, b: dict) -> dict:
    return {k: float(np.nanmax(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in b}


#: the engine before issue 13 (separate passes, one bootstrap replicate at a time, fp64 SVDs,
#: the k-NN screen with an unshifted query): the baseline of the whole-analysis comparison
BASELINE_REF = "f67e0bd"

#: what the whole-analysis comparison records of each engine's result
_LAYERWISE_KEYS = ("linear_cka", "dimension_wise_correlation", "debiased_cka", "procrustes_h_inv")
_SUBSAMPLE_KEYS = (
    "linear_cka",
    "dimension_wise_correlation",
    "h_inv_final",
    "linear_cka_boot",
    "dimension_wise_correlation_boot",
    "h_inv_final_boot",
    "linear_cka_null",
)


def _analysis_arrays(res) -> dict:
    """The metric values of one :func:`hrsa.metrics.compare_stores` result as flat arrays."""
    out = {f"layerwise.{k}": np.asarray(getattr(res.layerwise, k)) for k in _LAYERWISE_KEYS}
    ss = res.subsample
    out.update({f"subsample.{k}": np.asarray(getattr(ss, k), dtype=float) for k in _SUBSAMPLE_KEYS})
    for field in ("knn", "knn_boot", "knn_null"):
        for k, v in getattr(ss, field).items():
            out[f"subsample.{field}.{k}"] = np.asarray(v)
    return out


#: this checkout's package, for the children that run this engine
OURS_SRC = str(Path(__file__).resolve().parent.parent / "src")


def analysis_child(base: str, reason: str, settings_json: str, out: str) -> None:
    """One whole analysis of whatever ``hrsa`` is importable (the baseline checkout, via
    PYTHONPATH), timed after the imports; its values go to ``out`` (npz), the times and the
    bytes read by ``os.preadv`` (the stream; the baseline's subsample gather read the
    memory map, which is not counted) to stdout as JSON."""
    import torch  # noqa: F401  (imported before the clock starts)

    import hrsa
    from hrsa.activations import ActivationStore
    from hrsa.metrics import HRSASettings, compare_stores

    counted = {"bytes": 0}
    preadv = os.preadv

    def counting(fd, buffers, position, *rest):
        got = preadv(fd, buffers, position, *rest)
        counted["bytes"] += got
        return got

    os.preadv = counting
    settings = HRSASettings(**json.loads(settings_json))
    a, b = ActivationStore(base), ActivationStore(reason)
    t0, c0 = time.perf_counter(), time.process_time()
    res = compare_stores(a, b, settings)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    os.preadv = preadv
    np.savez(out, **_analysis_arrays(res))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "layerwise_seconds": res.layerwise.seconds,
                "subsample_seconds": res.subsample.seconds,
                "preadv_bytes": counted["bytes"],
                "headline": res.summary()["headline"],
                "hrsa_package": str(Path(hrsa.__file__).parent),
            }
        )
    )


def layerwise_child(base: str, reason: str, chunk_size: str, out: str) -> None:
    """The full (L+1) x (L+1) layer-by-layer phase of whatever ``hrsa`` is importable (the
    baseline checkout, via PYTHONPATH), timed after the imports; matrices to ``out`` (npz),
    times to stdout as JSON."""
    import torch  # noqa: F401  (imported before the clock starts)

    from hrsa.activations import ActivationStore
    from hrsa.metrics import layerwise_similarity

    a, b = ActivationStore(base), ActivationStore(reason)
    xs = [a.layer(i) for i in range(a.n_hidden_states)]
    ys = [b.layer(i) for i in range(b.n_hidden_states)]
    t0, c0 = time.perf_counter(), time.process_time()
    res = layerwise_similarity(xs, ys, chunk_size=int(chunk_size), device="cpu", diagonal=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.savez(
        out, linear_cka=res.linear_cka, dimension_wise_correlation=res.dimension_wise_correlation
    )
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}))


def baseline_checkout(ref: str, root: Path) -> Path:
    """``src/`` of the repository at ``ref`` (``git archive``), for PYTHONPATH."""
    repo = Path(__file__).resolve().parent.parent
    root.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root / "src"


def _run_child(flag: str, stores, extra: str, out: Path, pythonpath: str) -> dict:
    """Run ``--analysis-child`` / ``--layerwise-child`` in a fresh interpreter that imports
    ``hrsa`` from ``pythonpath``; returns its JSON line, with the npz it wrote as ``values``."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cmd = [sys.executable, __file__, flag, str(stores[0]), str(stores[1]), extra, str(out)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["values"] = dict(np.load(out))
    return result


def _compare_arrays(new: dict, old: dict) -> dict:
    """max |new - old| per metric (NaN where both are NaN counts as equal); sets of k-NN
    neighbours are compared exactly."""
    diffs, identical = {}, {}
    for key in sorted(old):
        a, b = np.asarray(new[key], dtype=float), np.asarray(old[key], dtype=float)
        if a.shape != b.shape:
            diffs[key] = float("inf")
            continue
        both_nan = np.isnan(a) & np.isnan(b)
        d = np.abs(np.where(both_nan, 0.0, a - b))
        diffs[key] = float(np.nanmax(d)) if d.size else 0.0
        if np.isnan(d).any():
            diffs[key] = float("inf")  # NaN on one side only
        identical[key] = bool(np.array_equal(a, b, equal_nan=True))
    return {"max_abs_diff": diffs, "identical": identical}


def analysis_comparison(stores, args) -> dict:
    """One whole analysis (:func:`hrsa.metrics.compare_stores`: the layer-by-layer phase, the
    subsample's k-NN search, bootstrap and permutation nulls) by this engine and by the engine
    at ``--baseline-ref`` (default :data:`BASELINE_REF`, today's engine when issue 13 was
    filed), each in a fresh subprocess on the same stores and settings, one after the other
    in this run; read-counted, timed, and every value compared."""
    from hrsa.activations import ActivationStore

    a, b = ActivationStore(stores[0]), ActivationStore(stores[1])
    n_l, d = a.n_hidden_states, a.dim
    fits = (n_l * n_l + 2 * n_l) * d * d * 8 + 2**20  # every fp64 accumulator in one pass
    settings = {
        "accumulator_bytes": args.accumulator_bytes or fits,
        "knn_k": [5, 10, 50],
        "knn_max_tokens": args.knn_max_tokens or min(a.n_rows, 4096),
        "bootstrap": args.bootstrap,
        "permutations": args.permutations,
        "chunk_size": args.chunk_size,
        "device": "cpu",
    }
    store_bytes = sum(a.layer(i).nbytes + b.layer(i).nbytes for i in range(a.n_hidden_states))
    work = Path(stores[0]).parent
    runs = {
        name: _run_child(
            "--analysis-child", stores, json.dumps(settings), work / f"{name}.npz", src
        )
        for name, src in (("one_pass", OURS_SRC), ("baseline", args.baseline_src))
    }
    new, old = runs["one_pass"], runs["baseline"]
    cmp = _compare_arrays(new["values"], old["values"])
    ref = fp64_reference(
        [a.layer(i) for i in range(a.n_hidden_states)],
        [b.layer(i) for i in range(b.n_hidden_states)],
    )
    vs_ref = _max_diff({k: new["values"][f"layerwise.{k}"] for k in ref}, ref)
    tol = {"layerwise": 1e-6, "subsample.h_inv": 1e-6, "other": 1e-6}
    worst = {
        "layerwise": max(v for k, v in cmp["max_abs_diff"].items() if k.startswith("layerwise")),
        "subsample": max(v for k, v in cmp["max_abs_diff"].items() if k.startswith("subsample")),
    }
    knn_same = all(v for k, v in cmp["identical"].items() if k.startswith("subsample.knn"))
    return {
        "settings": settings,
        "baseline_ref": args.baseline_ref,
        "hrsa_package": {"one_pass": new["hrsa_package"], "baseline": old["hrsa_package"]},
        "seconds_one_pass": round(new["seconds"], 3),
        "seconds_baseline": round(old["seconds"], 3),
        "speedup_whole_analysis": round(old["seconds"] / new["seconds"], 3),
        "cpu_time_ratio_baseline_to_one_pass": round(old["cpu_seconds"] / new["cpu_seconds"], 3),
        "phases_one_pass": {
            "layerwise_and_gather": round(new["layerwise_seconds"], 3),
            "subsample": round(new["subsample_seconds"], 3),
        },
        "phases_baseline": {
            "layerwise": round(old["layerwise_seconds"], 3),
            "subsample_with_its_gather": round(old["subsample_seconds"], 3),
        },
        "store_bytes": store_bytes,
        "read_amplification": round(new["preadv_bytes"] / store_bytes, 4),
        "read_amplification_baseline_streamed": round(old["preadv_bytes"] / store_bytes, 4),
        "max_abs_diff_vs_baseline": cmp["max_abs_diff"],
        "knn_sets_identical_to_baseline": knn_same,
        "equal_to_baseline_within_1e-6": bool(max(worst.values()) <= tol["other"]),
        "max_abs_dev_vs_fp64": vs_ref,
        "within_1e-6_of_fp64": bool(max(vs_ref.values()) <= 1e-6),
        "headline_one_pass": new["headline"],
        "headline_baseline": old["headline"],
    }


def _round_mantissa(x, bits: int, nearest: bool = True):
    """fp32 values kept to ``bits`` explicit mantissa bits, as TF32 (10) or bf16 (7) tensor-core
    inputs: rounded to nearest (ties away from zero) or truncated."""
    import torch

    drop = 23 - bits
    i = x.contiguous().view(torch.int32)
    if nearest:
        i = i + (1 << (drop - 1))
    return (i & ~((1 << drop) - 1)).view(torch.float32)


def numerics(n: int, d: int = 64) -> dict:
    """Deviation from fp64 of each accumulation scheme on massive-activation data."""
    import math

    import torch

    from hrsa.metrics import layerwise_similarity

    rng = np.random.default_rng(0)
    h = rng.standard_normal((n, d))
    spike = rng.random(n) < 0.005
    base, reason = [], []
    for i in range(2):
        h = np.tanh(h @ (np.eye(d) + 0.05 * rng.standard_normal((d, d))))
        h = h + 0.2 * rng.standard_normal((n, d))
        rot = np.linalg.qr(np.eye(d) + 0.2 * (i + 1) * rng.standard_normal((d, d)))[0]
        x, y = 3 * h, 3 * h @ rot + 0.5 * rng.standard_normal((n, d))
        x[:, [0, 5, 9]] += [3000, -3000, 1500]
        y[:, [2, 6]] += [-3000, 2500]
        x[spike, 11] += 3000
        y[spike, 12] -= 3000
        base.append(x.astype(np.float16))
        reason.append(y.astype(np.float16))
    ref = fp64_reference(base, reason)
    keys = ("linear_cka", "dimension_wise_correlation", "procrustes_h_inv")
    out: dict = {"tokens": n, "dim": d, "layers_per_model": 2}
    for acc in ("fp64", "fp32"):
        lw = layerwise_similarity(base, reason, device="cpu", accumulate=acc)
        dev = _max_diff({k: getattr(lw, k) for k in keys}, {k: ref[k] for k in keys})
        out[f"accumulate_{acc}"] = dev
    # products with rounded inputs (TF32: 10 mantissa bits, bf16: 7), fp32 sums per chunk,
    # fp64 across chunks, the engine's provisional shift and rank-1 correction
    for name, bits, nearest in (
        ("tf32_products", 10, True),
        ("tf32_truncated_products", 10, False),
        ("bf16_products", 7, True),
    ):
        vals = {k: np.zeros((2, 2)) for k in keys[:2]}
        hinv = np.zeros(2)
        for i in range(2):
            for j in range(2):
                tx, ty = torch.from_numpy(base[i]), torch.from_numpy(reason[j])
                sx, sy = tx[:4096].double().mean(0).float(), ty[:4096].double().mean(0).float()
                g = {k: torch.zeros(d, d, dtype=torch.float64) for k in ("c", "x", "y")}
                s1x, s1y = torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
                for a0 in range(0, n, 4096):
                    zx, zy = tx[a0 : a0 + 4096].float() - sx, ty[a0 : a0 + 4096].float() - sy
                    s1x += zx.sum(0)
                    s1y += zy.sum(0)
                    rx, ry = _round_mantissa(zx, bits, nearest), _round_mantissa(zy, bits, nearest)
                    g["c"] += rx.T @ ry
                    g["x"] += rx.T @ rx
                    g["y"] += ry.T @ ry
                dx, dy = s1x / n, s1y / n
                c = g["c"] - n * torch.outer(dx, dy)
                gx, gy = g["x"] - n * torch.outer(dx, dx), g["y"] - n * torch.outer(dy, dy)
                vals["linear_cka"][i, j] = float(
                    (c**2).sum() / torch.sqrt((gx**2).sum() * (gy**2).sum())
                )
                vals["dimension_wise_correlation"][i, j] = float(
                    (c.diagonal() / torch.sqrt(gx.diagonal() * gy.diagonal())).mean()
                )
                if i == j:
                    u, _, vh = torch.linalg.svd(c)
                    p = (u @ vh) ** 2
                    p = p / p.sum(1, keepdim=True)
                    hinv[i] = 1 - float((-torch.xlogy(p, p).sum(1)).mean()) / math.log(d)
        vals["procrustes_h_inv"] = hinv
        out[name + "_emulated"] = _max_diff(vals, {k: ref[k] for k in keys})
    out["reference_values"] = {
        "linear_cka_00": float(ref["linear_cka"][0, 0]),
        "dimension_wise_correlation_00": float(ref["dimension_wise_correlation"][0, 0]),
        "procrustes_h_inv_0": float(ref["procrustes_h_inv"][0]),
    }
    return out


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
    p.add_argument("--repeats", type=int, default=2, help="layer_by_layer: interleaved repeats")
    p.add_argument(
        "--bootstrap", type=int, help="analysis: bootstrap replicates (default 200; quick 20)"
    )
    p.add_argument("--permutations", type=int, help="analysis: permutations (default 50; quick 5)")
    p.add_argument(
        "--baseline-ref",
        default=BASELINE_REF,
        help=f"analysis: git ref of the engine to compare against (default {BASELINE_REF})",
    )
    p.add_argument("--knn-max-tokens", type=int, help="analysis: subsample (default min(N, 4096))")
    p.add_argument("--numerics-tokens", type=int, help="numerics: N (default 200000; quick 50000)")
    p.add_argument(
        "--accumulator-bytes",
        type=int,
        help="analysis: accumulator budget (default: what every accumulator needs, one pass)",
    )
    p.add_argument("--skip-analysis", action="store_true")
    p.add_argument("--skip-numerics", action="store_true")
    p.add_argument("--memory-factor", type=int, default=4)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-child", nargs=2, metavar=("BASE", "REASON"), help=argparse.SUPPRESS)
    p.add_argument("--analysis-child", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--layerwise-child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.analysis_child:
        analysis_child(*args.analysis_child)
        return {}
    if args.layerwise_child:
        layerwise_child(*args.layerwise_child)
        return {}
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
    if args.bootstrap is None:
        args.bootstrap = 20 if args.quick else 200
    if args.permutations is None:
        args.permutations = 5 if args.quick else 50
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
        args.baseline_src = str(baseline_checkout(args.baseline_ref, Path(tmp) / "baseline"))
        a, b = ActivationStore(stores[0]), ActivationStore(stores[1])
        xs = [a.layer(i) for i in range(n_layers)]
        ys = [b.layer(i) for i in range(n_layers)]

        # --- layer by layer vs per-pair recomputation ----------------------------------------
        layerwise_similarity(xs[:1], ys[:1], device="cpu")  # warm up (page cache, BLAS)
        # interleaved repeats, best of each (the machine may be shared); wall and CPU time
        walls: dict = {"previous": [], "ours": []}
        cpus: dict = {"previous": [], "ours": []}
        for _ in range(args.repeats):
            prev = _run_child(
                "--layerwise-child",
                stores,
                str(args.chunk_size),
                Path(tmp) / "previous.npz",
                args.baseline_src,
            )
            walls["previous"].append(prev["seconds"])
            cpus["previous"].append(prev["cpu_seconds"])
            old = prev["values"]
            t0, c0 = time.perf_counter(), time.process_time()
            ours = layerwise_similarity(
                xs, ys, chunk_size=args.chunk_size, device="cpu", diagonal=False
            )
            walls["ours"].append(time.perf_counter() - t0)
            cpus["ours"].append(time.process_time() - c0)
        t_prev, t_ours = min(walls["previous"]), min(walls["ours"])
        mem_x = [torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in xs]
        mem_y = [torch.from_numpy(np.asarray(y, dtype=np.float32)) for y in ys]
        t0 = time.perf_counter()
        cka_ref, corr_ref = per_pair_recomputation(mem_x, mem_y)
        t_ref = time.perf_counter() - t0
        del mem_x, mem_y
        report["layer_by_layer"] = {
            "seconds_layer_by_layer": round(t_ours, 3),
            "seconds_previous_engine": round(t_prev, 3),
            "speedup_over_previous_engine": round(t_prev / t_ours, 3),
            "cpu_time_ratio_previous_to_ours": round(min(cpus["previous"]) / min(cpus["ours"]), 3),
            "repeats": args.repeats,
            "max_abs_diff_vs_previous_engine": _max_diff(
                {k: getattr(ours, k) for k in ("linear_cka", "dimension_wise_correlation")},
                {k: old[k] for k in ("linear_cka", "dimension_wise_correlation")},
            ),
            "passes": ours.passes,
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

        # --- one whole analysis: reads, speed, values -----------------------------------------
        if not args.skip_analysis:
            report["analysis"] = analysis_comparison(stores, args)
        if not args.skip_numerics:
            report["numerics"] = numerics(
                args.numerics_tokens or (50_000 if args.quick else 200_000)
            )

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
