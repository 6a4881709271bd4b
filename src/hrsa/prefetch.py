"""Prefetch hub models and datasets on a node with internet, so compute jobs can run offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .atomic import atomic_path
from .config import schema_default
from .errors import ModelError


def prefetch_model(source: str, revision: str | None, record: str | os.PathLike) -> dict:
    """Download ``source`` at ``revision`` into the HF cache; write the resolved commit to ``record``."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            source,
            revision=revision,
            allow_patterns=[
                "*.json",
                "*.safetensors",
                "*.txt",
                "*.model",
                "*.py",
                "tokenizer*",
                "merges.txt",
                "vocab*",
            ],
        )
    except Exception as exc:
        raise ModelError(f"cannot download {source!r} at revision {revision!r}: {exc}") from exc
    info = {
        "source": source,
        "revision": revision,
        "resolved_revision": Path(path).name,
        "path": path,
    }
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return info


def prefetch_embedding_model(source: str, revision: str | None, record: str | os.PathLike) -> dict:
    """:func:`prefetch_model` for a published embedding model; the record also holds the format
    its sentence-transformers files declare (pooling, include_prompt, prompts), logged too."""
    import logging

    from .models import read_embedding_format

    info = prefetch_model(source, revision, record)
    fmt = read_embedding_format(info["path"])
    info["format"] = {
        "pooling": fmt.pooling,
        "include_prompt": fmt.include_prompt,
        "normalize": fmt.normalize,
        "prompts": fmt.prompts,
        "transformer_path": fmt.transformer_path,
        "declared": fmt.declared,
        "differs_from_recipe": fmt.differences(),
    }
    logging.getLogger("hrsa.prefetch").info("%s declares %s", source, fmt.describe())
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return info


def configure_hub(hub: dict | None, *, compute_job: bool = True) -> None:
    """Set the Hugging Face environment of a job before anything imports the hub libraries.

    ``hub.cache_dir`` becomes ``HF_HOME`` (a shared filesystem on clusters). Compute jobs run
    with the Hub offline (``hub.offline_jobs``, the schema's default: true), so a model or dataset that was not
    prefetched fails at once with an error naming it instead of hanging on a compute node
    without internet.
    """
    hub = hub or {}
    if hub.get("cache_dir"):
        os.environ["HF_HOME"] = os.path.expanduser(hub["cache_dir"])
    if compute_job and hub.get("offline_jobs", schema_default("hub.offline_jobs")):
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
