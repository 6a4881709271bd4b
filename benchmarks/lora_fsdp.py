"""LoRA under FSDP gives the single-process LoRA model (paper.yaml's path for Table 6's twins).

Trains one tiny backbone with LoRA adapters (``training.lora``) twice on the same data: in one
plain process, and with FSDP + gradient checkpointing over 2 gloo processes (``hrsa.train.launch``,
as the rehearsal and the GPU cluster run it). Both final models are saved merged; prints one JSON
object: the largest weight difference between them (``max_abs_diff_fsdp_vs_one``) against how far
LoRA moved the weights from the backbone (``max_abs_update``), and both wall times.

Kept out of the test suite for its ~30 s (tests/test_train_lora.py covers LoRA in one process).
Usage: OMP_NUM_THREADS=1 python benchmarks/lora_fsdp.py [--steps N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

from hrsa.data.contrastive import synthetic_examples, write_examples
from hrsa.tiny import build_tiny
from hrsa.train import launch, train_embedding_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_tiny(root / "base", recipe="base", seed=0, steps=3)
        data = root / "train.jsonl"
        write_examples(synthetic_examples(16, seed=0), data)
        adapter = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}
        config = dict(
            global_batch_size=8,
            mini_batch_size=2,
            max_steps=args.steps,
            save_every=1,
            max_length=32,
            learning_rate=1e-2,
            adapter=adapter,
        )
        t0 = time.perf_counter()
        train_embedding_model(root / "base", data, root / "one", config)
        t1 = time.perf_counter()
        summary = launch(
            backbone=str(root / "base"),
            data=str(data),
            out_dir=str(root / "fsdp"),
            config={**config, "fsdp": True, "gradient_checkpointing": True},
            num_processes=2,
        )
        t2 = time.perf_counter()
        one = load_file(root / "one" / "model.safetensors")
        fsdp = load_file(root / "fsdp" / "model.safetensors")
        base = load_file(root / "base" / "model.safetensors")
        print(
            json.dumps(
                {
                    "distributed_type": summary["distributed_type"],
                    "world_size": summary["world_size"],
                    "same_keys": one.keys() == fsdp.keys(),
                    "max_abs_diff_fsdp_vs_one": max(
                        float((one[k] - fsdp[k]).abs().max()) for k in one
                    ),
                    "max_abs_update": max(
                        float((one[k] - base[f"model.{k}"]).abs().max()) for k in one
                    ),
                    "seconds_one_process": round(t1 - t0, 2),
                    "seconds_fsdp_2_processes": round(t2 - t1, 2),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
