"""Run training in this process, or in one process per GPU under ``accelerate launch``.

Snakemake runs one job per (model, seed); with ``training.gpus > 1`` that job starts
``accelerate launch --multi_gpu --num_processes N -m hrsa.train SPEC.json`` (on a machine without
CUDA, ``torch.distributed.run`` with the gloo backend, which is what the tests use).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("hrsa.train")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(
    spec_path: str | os.PathLike, num_processes: int, *, cuda: bool | None = None
) -> list[str]:
    """The command that runs ``python -m hrsa.train spec_path`` in ``num_processes`` processes."""
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    port = str(_free_port())
    if cuda:
        return [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(num_processes),
            "--num_machines",
            "1",
            "--main_process_port",
            port,
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "hrsa.train",
            str(spec_path),
        ]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(num_processes),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        port,
        "-m",
        "hrsa.train",
        str(spec_path),
    ]


def launch(
    *,
    backbone: str,
    data: str,
    out_dir: str,
    config: dict,
    revision: str | None = None,
    model_key: str | None = None,
    num_processes: int = 1,
) -> dict:
    """Train (see :func:`hrsa.train.train_embedding_model`) with ``num_processes`` processes."""
    from .config import TrainConfig
    from .trainer import train_embedding_model

    cfg = TrainConfig.from_mapping(config)  # fail on bad settings before launching anything
    spec = {
        "backbone": str(backbone),
        "data": str(data),
        "out_dir": str(out_dir),
        "config": cfg.to_dict(),
        "revision": revision,
        "model_key": model_key,
    }
    if num_processes <= 1:
        return train_embedding_model(
            spec["backbone"],
            spec["data"],
            spec["out_dir"],
            cfg,
            revision=revision,
            model_key=model_key,
        )
    from ..errors import config_error

    if cfg.global_batch_size % num_processes:
        raise config_error(
            "training.global_batch_size",
            f"{cfg.global_batch_size} is not divisible by {num_processes} processes "
            "(training.gpus)",
        )
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_path = out.with_name(out.name + ".launch.json")
    spec_path.write_text(json.dumps(spec, indent=2))
    cmd = launch_command(spec_path, num_processes)
    log.info("launching: %s", " ".join(cmd))
    sys.stderr.flush()
    try:  # into this job's log (hrsa.logs.to_file points stderr at it)
        sink = sys.stderr if sys.stderr.fileno() >= 0 else None
    except (AttributeError, OSError, ValueError):
        sink = None
    result = subprocess.run(cmd, stdout=sink, stderr=sink)
    if result.returncode:
        raise RuntimeError(
            f"training with {num_processes} processes failed (exit {result.returncode}); "
            "rerunning resumes from the latest checkpoint"
        )
    spec_path.unlink(missing_ok=True)
    return json.loads((out / "training_summary.json").read_text())


def main(argv: list[str] | None = None) -> int:
    """``python -m hrsa.train SPEC.json`` (one process of a launched job, or a plain run)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m hrsa.train SPEC.json", file=sys.stderr)
        return 2
    from .trainer import train_embedding_model

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    spec = json.loads(Path(argv[0]).read_text())
    train_embedding_model(
        spec["backbone"],
        spec["data"],
        spec["out_dir"],
        spec["config"],
        revision=spec.get("revision"),
        model_key=spec.get("model_key"),
    )
    return 0
