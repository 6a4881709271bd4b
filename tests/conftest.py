"""Shared fixtures: tiny offline models built once per test session (per xdist worker)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the config checks' memory (hrsa.config.check_jobs) stays inside the test session, never in ~/.cache
import tempfile  # noqa: E402

os.environ.setdefault("HRSA_CHECK_CACHE", tempfile.mkdtemp(prefix="hrsa-check-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def _minutes(item) -> float:
    marker = item.get_closest_marker("slow")
    return float(marker.kwargs.get("minutes", 1)) if marker else 0.0


def pytest_collection_modifyitems(config, items):
    """Longest first: the slow tests (``slow(minutes=N)``, the expected minutes on one core of a
    2-core machine; 1 when not given) ahead of the rest, the longest first. With ``--dist
    worksteal`` (make test) the workflow runs start at once and the quick tests fill the other
    worker around them, instead of one workflow run starting last and running alone: the suite's
    wall time is then near its CPU time / workers. Stable: the order among equals is kept."""
    items.sort(key=_minutes, reverse=True)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A tiny base model and a fine-tuned partner sharing its tokenizer (few steps: seconds)."""
    from hrsa.tiny import build_tiny

    root = tmp_path_factory.mktemp("tiny-models")
    build_tiny(root / "base", recipe="base", seed=0, steps=5)
    build_tiny(root / "reason", recipe="reason", init=root / "base", seed=0, steps=3)
    return {"base": root / "base", "reason": root / "reason"}


@pytest.fixture(scope="session")
def other_tokenizer_model(tmp_path_factory):
    """A tiny base model with a different tokenizer (different vocabulary size)."""
    from hrsa.tiny import build_tiny

    root = tmp_path_factory.mktemp("tiny-other")
    build_tiny(root / "other", recipe="base", seed=1, steps=1, vocab_size=400)
    return root / "other"
