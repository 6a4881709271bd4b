"""Extraction benchmark: overhead over a bare forward loop, and peak memory against store size.

Prints JSON. Everything is measured in one run on the same machine and batches:

* ``throughput``: tokens/s of :func:`hrsa.activations.extract` (tokenize, forward, keep mask
  tokens, fp16 conversion with overflow checks, streaming writes, sha256, manifest) against a bare
  loop doing only tokenization and the same forward passes; target overhead <= 15 %.
* ``memory``: peak RSS of extraction (each in a fresh subprocess) for a dataset and one four times
  larger; target: peak memory flat in N while the store grows 4x.

Usage: python benchmarks/extraction.py [--hidden 256 --layers 8 --sequences 256 --threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_model(root: Path, hidden: int, layers: int) -> Path:
    """A randomly initialised Qwen2-style model with the tiny tokenizer (no training needed)."""
    from hrsa.tiny import build_untrained

    return build_untrained(root / "model", hidden_size=hidden, layers=layers)


def write_texts(path: Path, n: int) -> Path:
    from hrsa.data import synthetic
    from hrsa.data.probe import write_jsonl

    write_jsonl([{**r, "label": None} for r in synthetic.arithmetic_traces(n, 0)], path)
    return path


def bare_loop(model_dir: Path, texts: Path, batch_size: int) -> tuple[float, int]:
    """Tokenize + the same length-sorted forward passes, nothing kept."""
    import torch

    from hrsa.activations import length_sorted_batches, read_texts
    from hrsa.models import load_backbone

    net, tok = load_backbone(model_dir, device="cpu")
    t0 = time.perf_counter()
    recs = read_texts(texts)
    enc = tok([r["text"] for r in recs], add_special_tokens=False)["input_ids"]
    lengths = [len(e) for e in enc]
    with torch.inference_mode():
        for batch in length_sorted_batches(lengths, batch_size):
            width = max(lengths[i] for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(batch):
                ids[r, : lengths[i]] = torch.tensor(enc[i])
                mask[r, : lengths[i]] = 1
            net(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return time.perf_counter() - t0, sum(lengths)


def timed_extract(model_dir: Path, texts: Path, store: Path, batch_size: int) -> tuple[float, int]:
    from hrsa.activations import ActivationStore, extract

    t0 = time.perf_counter()
    extract(model=str(model_dir), texts=texts, store=store, device="cpu", batch_size=batch_size)
    return time.perf_counter() - t0, ActivationStore(store).n_rows


def child_peak(model_dir: Path, texts: Path, store: Path, batch_size: int, threads: int) -> dict:
    code = (
        f"import resource, json, torch; torch.set_num_threads({threads});"
        "from hrsa.activations import extract, ActivationStore;"
        f"extract(model={str(model_dir)!r}, texts={str(texts)!r}, store={str(store)!r},"
        f" device='cpu', batch_size={batch_size});"
        f"s = ActivationStore({str(store)!r});"
        "print(json.dumps({'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'n_tokens': s.n_rows}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["store_mb"] = sum(f.stat().st_size for f in store.iterdir()) / 2**20
    return info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--sequences", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_model(root, args.hidden, args.layers)
        texts = write_texts(root / "texts.jsonl", args.sequences)
        bare_loop(model_dir, texts, args.batch_size)  # warm-up
        bare, extr = [], []
        for r in range(args.repeats):  # interleaved, best of N
            bare.append(bare_loop(model_dir, texts, args.batch_size))
            extr.append(timed_extract(model_dir, texts, root / f"store{r}", args.batch_size))
        (t_bare, n), (t_ext, n2) = min(bare), min(extr)
        assert n == n2
        big = write_texts(root / "texts4.jsonl", 4 * args.sequences)
        small_mem = child_peak(model_dir, texts, root / "mem1", args.batch_size, args.threads)
        big_mem = child_peak(model_dir, big, root / "mem4", args.batch_size, args.threads)
    result = {
        "setup": {
            "hidden": args.hidden,
            "layers": args.layers,
            "sequences": args.sequences,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "tokens": n,
            "device": "cpu",
            "torch": torch.__version__,
        },
        "throughput": {
            "bare_forward_tokens_per_s": n / t_bare,
            "extract_tokens_per_s": n / t_ext,
            "overhead": t_ext / t_bare - 1,
            "target_overhead_max": 0.15,
        },
        "memory": {
            "small": small_mem,
            "large": big_mem,
            "store_ratio": big_mem["store_mb"] / small_mem["store_mb"],
            "peak_ratio": big_mem["peak_rss_mb"] / small_mem["peak_rss_mb"],
            "target": "peak_ratio ~ 1 while store_ratio ~ 4",
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
