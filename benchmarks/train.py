"""Training benchmark: steps/s and peak memory with and without gradient caching, in one run.

Prints JSON. A tiny Qwen2-style model trains on the synthetic contrastive data with a global
batch 8x the mini-batch (1 query + 1 positive + 3 hard negatives each), once with
``CachedMultipleNegativesRankingLoss`` (GradCache, activations of one mini-batch alive at a time)
and once with the plain ``MultipleNegativesRankingLoss`` (the whole batch's activations alive).
Each variant runs in a fresh subprocess so its peak memory is its own: on GPU
``torch.cuda.max_memory_allocated``, on CPU the peak RSS minus the RSS after loading the model.
The steps are the trainer's (collate, loss, backward, clip, AdamW, scheduler), timed after one
warm-up step.

Usage: python benchmarks/train.py [--mini-batch 8 --steps 6 --hidden 128 --layers 4 --threads 2]
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


def run_variant(model_dir: str, cached: bool, mini: int, steps: int, max_length: int) -> dict:
    """Time ``steps`` training steps in this process (called in a subprocess)."""
    import resource

    import torch
    from transformers import get_cosine_schedule_with_warmup

    from hrsa.data.contrastive import group_by_source, synthetic_examples
    from hrsa.models import load_backbone
    from hrsa.train import MeanPoolEmbedder, TrainConfig, build_loss
    from hrsa.train.batches import collate
    from hrsa.train.trainer import parameter_groups

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = TrainConfig(
        global_batch_size=8 * mini,
        mini_batch_size=mini,
        gradient_cache=cached,
        max_length=max_length,
        max_steps=steps + 1,
    )
    model, tok = load_backbone(model_dir, dtype="float32", device=str(device))
    model.train()
    embedder = MeanPoolEmbedder(model)
    loss_fn = build_loss(embedder, cfg)
    optimizer = torch.optim.AdamW(
        parameter_groups(embedder, cfg.weight_decay), lr=cfg.learning_rate
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.max_steps)
    groups = group_by_source(synthetic_examples(cfg.global_batch_size, seed=0))
    batches = [rows for rows in groups.values()]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_memory = torch.cuda.memory_allocated() / 2**20

    def step(i: int) -> float:
        rows = batches[i % len(batches)]
        features = collate(
            rows,
            tok,
            num_negatives=3,
            template=cfg.instruction_template,
            max_length=cfg.max_length,
            exclude_instruction=True,
        )
        features = [{k: v.to(device) for k, v in f.items()} for f in features]
        with autocast:
            loss = loss_fn(features, None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(embedder.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    step(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    losses = [step(i) for i in range(1, steps + 1)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20 - base_memory
        memory = {"peak_gpu_memory_mb": round(peak, 1)}
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory = {
            "peak_rss_mb": round(peak, 1),
            "peak_rss_over_loaded_model_mb": round(peak - rss_before, 1),
        }
    return {
        "gradient_cache": cached,
        "steps": steps,
        "seconds": round(elapsed, 3),
        "steps_per_s": round(steps / elapsed, 3),
        **memory,
        "last_loss": round(losses[-1], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mini-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=["cached", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    if args.variant:  # subprocess: one variant
        print(
            json.dumps(
                run_variant(
                    args.model,
                    args.variant == "cached",
                    args.mini_batch,
                    args.steps,
                    args.max_length,
                )
            )
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp), args.hidden, args.layers)
        results = {}
        for variant in ("cached", "plain"):
            cmd = [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--model",
                str(model_dir),
                "--mini-batch",
                str(args.mini_batch),
                "--steps",
                str(args.steps),
                "--max-length",
                str(args.max_length),
                "--threads",
                str(args.threads),
            ]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    cached, plain = results["cached"], results["plain"]
    key = (
        "peak_gpu_memory_mb" if "peak_gpu_memory_mb" in cached else "peak_rss_over_loaded_model_mb"
    )
    report = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": args.threads,
        "model": {"hidden": args.hidden, "layers": args.layers},
        "global_batch_size": 8 * args.mini_batch,
        "mini_batch_size": args.mini_batch,
        "sequences_per_step": 8 * args.mini_batch * 5,
        "max_length": args.max_length,
        "with_gradient_cache": cached,
        "without_gradient_cache": plain,
        "slowdown_from_caching": round(plain["steps_per_s"] / cached["steps_per_s"], 3),
        "memory_ratio_cached_over_plain": round(cached[key] / max(plain[key], 1e-9), 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
