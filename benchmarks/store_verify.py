"""Cost of verifying activation stores on read (issue 17, item 1). Prints one JSON object.

Every consumer of a store checks every file against the manifest's sha256
(:func:`hrsa.store.verified`): the bytes a job streams are hashed by its reader threads as they
are read; the files it does not read are hashed at the end. Measured on two synthetic fp16
stores, on this machine, each job with and without verification (alternating, best of
``--repeats``; stores opened with ``verify_reads=False`` and ``compare_stores(verify=False)``
for the baseline):

* ``hrsa``: one :func:`hrsa.metrics.compare_stores` (reads every layer file whole in its first
  pass: verification adds hashing on the reader thread, no read);
* ``probe``: :func:`hrsa.metrics.probe_stores` (reads the last layer; the other layers are
  read and hashed at the end);
* ``pair_check``: :func:`hrsa.store.pair_check` (reads and hashes the index files; the layer
  files' sizes are checked at open, their bytes are not read: the pair check is a local rule).

For each: ``job_reads_bytes`` (what the job reads anyway) and ``verify_reads_bytes`` (what
verification reads on top), ``seconds`` with and without, ``verify_seconds`` (the difference;
near zero or negative: within the noise),
``read_seconds`` (a plain sequential read of the layer bytes the job reads, page cache warm,
one thread), ``verify_over_read`` = verify_seconds / read_seconds and ``verify_over_job`` =
verify_seconds / seconds without. ``hash_gb_per_s`` (sha256 of one core on memory) and
``read_gb_per_s`` (page-cache reads) say how the numbers scale: on a cold disk the reads cost
more and the hashing the same. ``full_verify_seconds``: :meth:`ActivationStore.verify` of both
stores (every file hashed afresh on up to 8 threads).

Usage: OMP_NUM_THREADS=1 python benchmarks/store_verify.py [--quick] [--tokens N] [--dim D]
[--layers L] [--repeats R]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def make_stores(root: Path, n_tokens: int, dim: int, n_layers: int, seed: int = 0):
    """Two related labelled fp16 stores, written block by block."""
    from hrsa.store import StoreWriter

    rng = np.random.default_rng(seed)
    lengths = rng.integers(16, 128, max(1, n_tokens // 16))
    lengths = lengths[np.cumsum(lengths) <= n_tokens]
    lengths = np.append(lengths, n_tokens - lengths.sum()).astype(int)
    lengths = lengths[lengths > 0]
    seq = np.repeat(np.arange(lengths.size), lengths)
    pos = np.concatenate([np.arange(m) for m in lengths])
    tok = rng.integers(0, 1000, n_tokens)
    sequences = [{"id": f"s{j}", "label": int(j % 2)} for j in range(lengths.size)]
    mix = [np.eye(dim) + 0.1 * rng.standard_normal((dim, dim)) / np.sqrt(dim) for _ in range(2)]
    paths = []
    for side in range(2):
        path = root / f"store{side}"
        writer = StoreWriter(path, n_tokens, dim, n_layers, "float16")
        block = 8192
        for a in range(0, n_tokens, block):
            b = min(a + block, n_tokens)
            base = rng.standard_normal((b - a, dim)).astype(np.float32)
            base += (seq[a:b] % 2)[:, None]
            hidden = [
                (base @ mix[side] * (1 + 0.1 * i)).astype(np.float16) for i in range(n_layers)
            ]
            writer.append(hidden, tok[a:b], seq[a:b], pos[a:b])
        paths.append(writer.commit(sequences, {"model": f"m{side}", "dataset": "bench"}))
    return paths


def hash_rate(nbytes: int = 1 << 28) -> float:
    data = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8).tobytes()
    t0 = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return nbytes / (time.perf_counter() - t0) / 1e9


def read_seconds(files: list[Path]) -> float:
    """A plain sequential read of ``files`` (one thread, 4 MiB reads), the page cache warm."""
    buf = bytearray(1 << 22)
    for _ in range(2):  # the first round warms the page cache
        t0 = time.perf_counter()
        for path in files:
            with open(path, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass
        seconds = time.perf_counter() - t0
    return seconds


def _jobs(settings: dict):
    from hrsa.metrics import HRSASettings, compare_stores, probe_stores
    from hrsa.store import ActivationStore, pair_check

    def hrsa(paths, verify):
        a, b = (ActivationStore(p, verify_reads=verify) for p in paths)
        compare_stores(a, b, HRSASettings(**settings), verify=verify)

    def probe(paths, verify):
        a, b = (ActivationStore(p, verify_reads=verify) for p in paths)
        probe_stores(a, b, seed=0)

    def pair(paths, verify):
        a, b = (ActivationStore(p, verify_reads=verify) for p in paths)
        pair_check(a, b)

    return {"hrsa": hrsa, "probe": probe, "pair_check": pair}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: runs in seconds")
    p.add_argument("--tokens", type=int, help="N (default 32768; quick 8192)")
    p.add_argument("--dim", type=int, help="D (default 256; quick 64)")
    p.add_argument("--layers", type=int, help="hidden states L+1 (default 9; quick 5)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs, best of")
    p.add_argument("--dir", help="where to write the stores (default: a temporary directory)")
    args = p.parse_args(argv)
    n = args.tokens or (8192 if args.quick else 32768)
    dim = args.dim or (64 if args.quick else 256)
    n_layers = args.layers or (5 if args.quick else 9)
    settings = dict(knn_k=[10], knn_max_tokens=min(n, 2048), bootstrap=4, permutations=2)

    from hrsa.store import INDEX_FILES, ActivationStore, hidden_file

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        paths = make_stores(Path(tmp), n, dim, n_layers)
        layer_files = [p / hidden_file(i) for p in paths for i in range(n_layers)]
        store_bytes = sum(f.stat().st_size for p in paths for f in p.iterdir())
        reads = {
            "hrsa": layer_files,
            "probe": [p / hidden_file(n_layers - 1) for p in paths],
            "pair_check": [p / name for p in paths for name in INDEX_FILES],
        }
        out = {
            "machine": platform.machine(),
            "cores": len(os.sched_getaffinity(0)),
            "tokens": n,
            "dim": dim,
            "hidden_states": n_layers,
            "store_bytes_both": store_bytes,
            "hash_gb_per_s": round(hash_rate(), 3),
        }
        all_read = read_seconds(layer_files)
        out["read_gb_per_s"] = round(sum(f.stat().st_size for f in layer_files) / all_read / 1e9, 3)
        t0 = time.perf_counter()
        for path in paths:
            ActivationStore(path).verify()
        out["full_verify_seconds"] = round(time.perf_counter() - t0, 4)
        for name, job in _jobs(settings).items():
            best = {True: float("inf"), False: float("inf")}
            for _ in range(args.repeats):
                for verify in (False, True):
                    t0 = time.perf_counter()
                    job(paths, verify)
                    best[verify] = min(best[verify], time.perf_counter() - t0)
            extra = best[True] - best[False]
            job_read = read_seconds(reads[name])
            own = sum(f.stat().st_size for f in reads[name])
            out[name] = {
                "job_reads_bytes": own,
                # hrsa hashes what it streams; the pair check verifies only what it reads
                "verify_reads_bytes": store_bytes - own if name == "probe" else 0,
                "seconds": round(best[True], 4),
                "seconds_without_verify": round(best[False], 4),
                "verify_seconds": round(extra, 4),
                "read_seconds": round(job_read, 4),
                "verify_over_read": round(extra / job_read, 3),
                "verify_over_job": round(extra / best[False], 4),
            }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
