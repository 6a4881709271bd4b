"""The workflow scripts' preamble (hrsa.logs.job_setup): log file, thread limits, hub set-up."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from types import SimpleNamespace

import pytest
import torch

from hrsa.logs import job_setup

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")
HUB_VARS = ("HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Start without the variables job_setup sets; monkeypatch restores them afterwards."""
    for var in (*THREAD_VARS, *HUB_VARS):
        monkeypatch.delenv(var, raising=False)


@contextlib.contextmanager
def setup(log_path, *, job_threads=3, config=None, **options):
    """job_setup with a stand-in for Snakemake's ``snakemake`` object; yields (logger, the
    stream stderr was redirected to) and undoes the logging, stderr and torch thread changes."""
    smk = SimpleNamespace(log=[str(log_path)], threads=job_threads, config=config or {})
    handlers, level = logging.root.handlers[:], logging.root.level
    stderr, torch_threads = sys.stderr, torch.get_num_threads()
    try:
        logger = job_setup(smk, **options)
        stream = sys.stderr
        yield logger, stream
    finally:
        redirected = sys.stderr
        sys.stderr = stderr
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
        if redirected is not stderr:
            redirected.close()
        torch.set_num_threads(torch_threads)


def test_job_setup_logs_to_file_and_limits_threads(tmp_path):
    log_file = tmp_path / "logs" / "rule" / "job.log"  # its folder does not exist yet
    with setup(log_file, job_threads=3) as (logger, stream):
        logger.info("from the hrsa logger")
        logging.getLogger("hrsa.metrics").warning("from a child logger")
        print("a traceback would land here", file=sys.stderr)
        stream.flush()
        assert logger.name == "hrsa"
        assert torch.get_num_threads() == 3
    text = log_file.read_text()
    assert "job context: host=" in text
    assert "from the hrsa logger" in text
    assert "WARNING hrsa.metrics: from a child logger" in text
    assert "a traceback would land here" in text
    assert os.environ["OMP_NUM_THREADS"] == "3"
    assert os.environ["MKL_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == "3"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "HF_HUB_OFFLINE" not in os.environ  # the hub only when asked for


def test_job_setup_threads_false_leaves_threads_alone(tmp_path):
    before = torch.get_num_threads()
    with setup(tmp_path / "job.log", job_threads=before + 1, threads=False):
        assert torch.get_num_threads() == before
    assert "OMP_NUM_THREADS" not in os.environ
    assert "job context" in (tmp_path / "job.log").read_text()


def test_job_setup_configures_the_hub_offline(tmp_path):
    hub = {"cache_dir": str(tmp_path / "hf")}
    with setup(tmp_path / "job.log", job_threads=1, config={"hub": hub}, hub=True):
        pass
    assert os.environ["HF_HOME"] == str(tmp_path / "hf")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        assert os.environ[var] == "1"


def test_job_setup_submit_node_jobs_stay_online(tmp_path):
    hub = {"cache_dir": str(tmp_path / "hf")}
    options = {"threads": False, "hub": True, "compute_job": False}
    with setup(tmp_path / "job.log", config={"hub": hub}, **options):
        pass
    assert os.environ["HF_HOME"] == str(tmp_path / "hf")
    assert "HF_HUB_OFFLINE" not in os.environ
