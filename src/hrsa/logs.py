"""Logging set-up shared by the workflow scripts."""

from __future__ import annotations

import logging
import os
import sys


def to_file(path: str | os.PathLike | None, level: int = logging.INFO) -> logging.Logger:
    """Send this process's logging and stderr to ``path`` (a Snakemake ``log:`` file).

    stderr is redirected too, so tracebacks, warnings and tqdm progress bars land in the log.
    """
    logger = logging.getLogger("hrsa")
    if path is None:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return logger
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stderr = stream
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=stream,
        force=True,
    )
    return logger


def limit_threads(threads: int | None) -> None:
    """Pin torch / BLAS threads to the Snakemake job's ``threads`` to avoid oversubscription."""
    if not threads:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(int(threads))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
