"""Where a model of the CoT generation runs: ``cot_generation.<role>.serve``.

* ``external`` - any OpenAI-compatible endpoint at ``base_url`` (a provider's API, a server you
  started yourself); nothing is started.
* ``local`` - ``transformers serve`` (``pip install "transformers[serving]"``) started by the job
  on this machine for the model (a ``models`` key, a local directory or a hub id), for small
  models; CPU by default (``local.device``).
* ``slurm_vllm`` - ``vllm serve`` started by the job on the node SLURM gave it (the rule asks for
  ``vllm.gpus`` GPUs, ``vllm.mem_mb`` and ``vllm.runtime``), tensor-parallel over those GPUs.

A started server listens on 127.0.0.1 (a free port unless ``port`` is set), is health-checked
(``GET /health``, then ``GET /v1/models``) before the first request - its process is watched, so
a server that dies while loading fails the job at once with the end of its log - and is stopped
(SIGTERM, then SIGKILL after 30 s) when the job's work is done or the job fails. The server is
also told to exit when the job process dies (Linux ``PR_SET_PDEATHSIG``), so a killed job leaves
no orphan holding GPUs. Its output goes to ``<job log>.server.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import HRSAError

log = logging.getLogger("hrsa.cot.serve")

SERVE_KINDS = ("external", "local", "slurm_vllm")


class ServerError(HRSAError):
    """A server the job started did not come up (the message ends with its log's tail)."""


@dataclass(frozen=True)
class Served:
    """A usable endpoint: its base URL and the model name requests must carry."""

    base_url: str
    model: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _executable(name: str | None, default: str) -> str:
    """``name``, else ``default`` next to this Python (a venv's console script), else on PATH."""
    if name:
        return name
    beside = Path(sys.executable).with_name(default)
    return str(beside) if beside.exists() else (shutil.which(default) or default)


def server_command(settings: Mapping, port: int) -> tuple[list[str], str]:
    """The command starting the server of ``settings`` (an endpoint's resolved settings) on
    ``port``, and the model name its requests must carry."""
    source, serve = settings["source"], settings["serve"]
    if serve == "local":
        local = settings["local"]
        cmd = [
            _executable(local.get("executable"), "transformers"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            str(local.get("device", "cpu")),
            "--dtype",
            str(local.get("dtype", "auto")),
            *[str(a) for a in local.get("extra_args") or []],
            source,
        ]
        return cmd, source  # transformers serve pins the model: requests name it as loaded
    if serve == "slurm_vllm":
        vllm = settings["vllm"]
        name = settings["served_name"]
        cmd = [
            _executable(vllm.get("executable"), "vllm"),
            "serve",
            source,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--served-model-name",
            name,
            "--tensor-parallel-size",
            str(int(vllm.get("gpus", 1))),
        ]
        if settings.get("revision"):
            cmd += ["--revision", str(settings["revision"])]
        if vllm.get("reasoning_parser"):
            cmd += ["--reasoning-parser", str(vllm["reasoning_parser"])]
        if vllm.get("max_model_len"):
            cmd += ["--max-model-len", str(int(vllm["max_model_len"]))]
        cmd += [str(a) for a in vllm.get("extra_args") or []]
        return cmd, name
    raise ValueError(f"not a started server: {serve!r}")


def _get(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


def _tail(path: Path | None, n: int = 40) -> str:
    if path is None or not path.exists():
        return "(no server log)"
    lines = path.read_text(errors="replace").splitlines()[-n:]
    return "\n".join(lines)


def wait_healthy(
    base: str, proc: subprocess.Popen, timeout: float, log_path: Path | None = None
) -> float:
    """Poll ``base/health`` until it answers 200 (then check ``base/v1/models``); seconds it
    took. The server exiting or ``timeout`` passing is a :class:`ServerError`."""
    start = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise ServerError(
                f"the server exited with code {proc.returncode} before it was healthy: "
                f"{' '.join(proc.args)}\n--- end of {log_path} ---\n{_tail(log_path)}"
            )
        if _get(f"{base}/health") == 200 and _get(f"{base}/v1/models") == 200:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise ServerError(
                f"the server at {base} was not healthy after {timeout:.0f} s "
                f"(startup_timeout): {' '.join(proc.args)}\n--- end of {log_path} ---\n"
                f"{_tail(log_path)}"
            )
        time.sleep(0.5)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def serving(settings: Mapping, log_path: str | os.PathLike | None = None) -> Iterator[Served]:
    """The endpoint of ``settings`` for the duration of the block: ``external`` as configured,
    ``local``/``slurm_vllm`` started here and stopped afterwards (see the module docstring)."""
    serve = settings["serve"]
    if serve == "external":
        yield Served(settings["base_url"], settings["model"])
        return
    section = settings["local" if serve == "local" else "vllm"]
    port = int(section.get("port") or free_port())
    cmd, name = server_command(settings, port)
    log_file = Path(log_path) if log_path else None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL  # noqa: SIM115
    log.info("starting the %s server: %s", serve, " ".join(cmd))
    previous = signal.getsignal(signal.SIGTERM)

    def _terminated(signum, frame):  # a cancelled job: leave through `finally`, stop the server
        raise SystemExit(128 + signum)

    proc = subprocess.Popen(
        cmd,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stop() ends the server and its workers
        preexec_fn=_die_with_parent,
    )
    try:
        with contextlib.suppress(ValueError):  # not in the main thread: no handler
            signal.signal(signal.SIGTERM, _terminated)
        base = f"http://127.0.0.1:{port}"
        took = wait_healthy(base, proc, float(section.get("startup_timeout", 600)), log_file)
        log.info("%s server healthy at %s after %.1f s", serve, base, took)
        yield Served(f"{base}/v1", name)
    finally:
        stop(proc)
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)
        if log_file is not None:
            out.close()
        log.info("%s server stopped", serve)
