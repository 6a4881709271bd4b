"""Paper-scale cost model of HRSA: counts per analysis and predicted wall time. Prints JSON.

For each model size of the paper (hrsa.metrics.cost.MODEL_SIZES) and each device, one analysis
(one pair x stage x dataset at the paper's settings: N = 400k tokens, B = 200, P = 50, a 50k-row
subsample) is counted by :func:`hrsa.metrics.cost.analysis_cost` (bytes read, passes per store,
FLOPs per phase, accumulator memory) and timed by :func:`hrsa.metrics.cost.predict_seconds`.

Devices:
* ``this-machine``: rates measured here, now: fp32 GEMM throughput (torch, at the engine's shape
  (chunk x D)^T (chunk x D)), store read bandwidth (a fresh temporary file read back with the
  engine's reader), and on CUDA the pinned host-to-device bandwidth and TF32 / bf16 GEMM rates;
* ``l20-48gb`` and ``h100-80gb``: vendor peak rates at an assumed 50 % efficiency for fp32 GEMMs
  and an assumed store path of 3 GB/s (local NVMe or page cache; a network file system can be
  slower: pass --read-gbs). These are assumptions, stated in the JSON (``source``).

Usage: python benchmarks/scale.py [--tokens 400000] [--read-gbs 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def measure_gemm(device: str, dtype_name: str = "float32", dim: int = 1024, rows: int = 8192):
    import torch

    dtype = getattr(torch, dtype_name)
    x = torch.randn(rows, dim, device=device).to(dtype)
    y = torch.randn(rows, dim, device=device).to(dtype)
    acc = torch.zeros(dim, dim, device=device, dtype=torch.float32)
    for _ in range(2):  # warm-up
        acc.addmm_(x.T, y) if dtype == torch.float32 else acc.add_((x.T @ y).float())
    if device == "cuda":
        torch.cuda.synchronize()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        acc.addmm_(x.T, y) if dtype == torch.float32 else acc.add_((x.T @ y).float())
        reps += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return reps * 2 * rows * dim * dim / (time.perf_counter() - t0)


def measure_read(size_bytes: int) -> float:
    """Bytes/s of reading a fresh file in 64 MiB pread calls (mostly the page cache here)."""
    chunk = 64 * 2**20
    with tempfile.NamedTemporaryFile(delete=False) as f:
        block = os.urandom(chunk)
        for _ in range(max(1, size_bytes // chunk)):
            f.write(block)
        path = f.name
    try:
        fd = os.open(path, os.O_RDONLY)
        buf = bytearray(chunk)
        t0, total = time.perf_counter(), 0
        while True:
            n = os.preadv(fd, [buf], total)
            if n <= 0:
                break
            total += n
        os.close(fd)
        return total / (time.perf_counter() - t0)
    finally:
        os.unlink(path)


def measure_h2d(size_bytes: int = 512 * 2**20) -> float:
    import torch

    host = torch.empty(size_bytes // 2, dtype=torch.float16).pin_memory()
    dev = torch.empty_like(host, device="cuda")
    dev.copy_(host, non_blocking=True)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        dev.copy_(host, non_blocking=True)
    torch.cuda.synchronize()
    return 5 * size_bytes / (time.perf_counter() - t0)


def this_machine(quick: bool):
    import torch

    from hrsa.metrics.cost import DeviceRates

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    measured = {"gemm_fp32_flops": measure_gemm(device, dim=512 if quick else 1024)}
    measured["read_bytes_per_s"] = measure_read((128 if quick else 1024) * 2**20)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        measured["gemm_tf32_flops"] = measure_gemm(device)
        torch.backends.cuda.matmul.allow_tf32 = False
        measured["gemm_bf16_flops"] = measure_gemm(device, "bfloat16")
        measured["h2d_bytes_per_s"] = measure_h2d()
        memory = torch.cuda.mem_get_info()[1]
        read = min(measured["read_bytes_per_s"], measured["h2d_bytes_per_s"])
    else:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        read = measured["read_bytes_per_s"]
    rates = DeviceRates(
        name=f"this-machine ({device}, {torch.get_num_threads()} threads)",
        gemm_flops=measured["gemm_fp32_flops"],
        read_bytes_per_s=read,
        memory_bytes=int(memory),
        source="measured in this run",
    )
    return rates, measured


def assumed_devices(read_gbs: float):
    from hrsa.metrics.cost import DeviceRates

    read = read_gbs * 1e9
    return [
        DeviceRates(
            name="l20-48gb",
            gemm_flops=0.5 * 59.8e12,
            read_bytes_per_s=read,
            memory_bytes=48 * 10**9,
            source=f"assumed: 50% of the L20's 59.8 TFLOP/s fp32 peak; store path {read_gbs} GB/s",
        ),
        DeviceRates(
            name="h100-80gb",
            gemm_flops=0.5 * 67e12,
            read_bytes_per_s=read,
            memory_bytes=80 * 10**9,
            source=f"assumed: 50% of the H100 SXM's 67 TFLOP/s fp32 peak; store path {read_gbs} GB/s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=400_000)
    parser.add_argument("--subsample", type=int, default=50_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=50)
    parser.add_argument("--read-gbs", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="smaller rate measurements")
    args = parser.parse_args()

    from hrsa.metrics.cost import MODEL_SIZES, AnalysisSize, predict_seconds

    here, measured = this_machine(args.quick)
    devices = [here, *assumed_devices(args.read_gbs)]
    predictions = []
    for model, (dim, n_hidden) in MODEL_SIZES.items():
        size = AnalysisSize(
            n_tokens=args.tokens,
            dim=dim,
            n_hidden=n_hidden,
            subsample=args.subsample,
            bootstrap=args.bootstrap,
            permutations=args.permutations,
        )
        for rates in devices:
            predictions.append({"model": model, **predict_seconds(size, rates)})
    print(
        json.dumps(
            {
                "inputs": vars(args),
                "measured_here": measured,
                "predictions": predictions,
                "summary": {
                    f"{p['model']} on {p['device']}": round(p["predicted_seconds"], 1)
                    for p in predictions
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
