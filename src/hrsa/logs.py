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
    logger.info("job context: %s", job_context())
    return logger


def job_context() -> str:
    """One line saying where this process runs: host, SLURM job id and visible GPUs.

    Written at the top of every rule's log, so a log shows which SLURM job (if any) produced
    it and which GPUs the scheduler handed it (``CUDA_VISIBLE_DEVICES``).
    """
    import socket

    env = os.environ
    job = env.get("SLURM_JOB_ID", "none")
    if env.get("SLURM_ARRAY_TASK_ID"):
        job = f"{env.get('SLURM_ARRAY_JOB_ID', job)}_{env['SLURM_ARRAY_TASK_ID']}"
    return (
        f"host={socket.gethostname()} slurm_job_id={job} "
        f"cuda_visible_devices={env.get('CUDA_VISIBLE_DEVICES', 'unset')}"
    )


def limit_threads(threads: int | None) -> None:
    """Pin torch / BLAS threads to the Snakemake job's ``threads`` to avoid oversubscription."""
    if not threads:
        return
    # Idle OpenMP threads spin by default; on a contended machine (2 cores, several jobs) that
    # made tiny jobs 4-5x slower. PASSIVE makes them sleep. Only effective before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(int(threads))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def job_setup(
    smk, *, threads: bool = True, hub: bool = False, compute_job: bool = True
) -> logging.Logger:
    """The preamble of every ``workflow/scripts`` entry point; call it before any heavy import.

    ``smk`` is the ``snakemake`` object Snakemake injects into a ``script:``. In this order:

    1. logging and stderr go to the job's ``log:`` file (:func:`to_file`);
    2. with ``threads``, torch / BLAS threads are pinned to the job's ``threads``
       (:func:`limit_threads`; it imports torch, so jobs that never use torch pass False);
    3. with ``hub``, the Hugging Face environment is set from ``smk.config["hub"]``
       (:func:`hrsa.prefetch.configure_hub`, offline unless ``compute_job`` is False), which must
       happen before transformers, datasets or mteb are imported.

    Returns the ``hrsa`` logger.
    """
    logger = to_file(smk.log[0] if len(smk.log) else None)
    if threads:
        limit_threads(smk.threads)
    if hub:
        from .prefetch import configure_hub

        configure_hub(smk.config.get("hub"), compute_job=compute_job)
    return logger
