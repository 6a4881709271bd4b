"""Prefetch hub models, datasets and the authors' instruction files on a node with internet, so
compute jobs can run offline."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .atomic import atomic_path
from .config import schema_default
from .errors import DataError, ModelError

#: seconds a download may stall before it fails
DOWNLOAD_TIMEOUT = 60.0


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


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL (``scheme://...``: https, http, file) rather than a path."""
    scheme, sep, _ = str(location).partition("://")
    return bool(sep) and scheme.isalpha()


def fetch_url(url: str, timeout: float = DOWNLOAD_TIMEOUT) -> bytes:
    """The bytes at ``url`` (http(s) or file://), with urllib: the one network call of
    :func:`prefetch_file` (tests replace it or give a file:// URL)."""
    import urllib.request

    from . import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"hrsa-workflow/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s)/file
        return response.read()


def prefetch_file(
    url: str,
    out: str | os.PathLike,
    record: str | os.PathLike,
    *,
    check: Callable[[Path], None] | None = None,
) -> dict:
    """Download ``url`` to ``out`` and describe it in ``record`` (JSON: ``url``, ``sha256``,
    ``bytes``, ``path``). ``check(path)`` may reject the downloaded file (an error page, a wrong
    format) before it is put in place. Both files are written atomically; a failed download is
    a :class:`DataError` naming the URL."""
    try:
        data = fetch_url(url)
    except Exception as exc:
        raise DataError(f"cannot download {url}: {exc}") from exc
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
        if check is not None:
            check(tmp)
    info = {
        "url": url,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "path": str(out),
    }
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return info


def prefetch_authors_file(
    kind: str, url: str, out: str | os.PathLike, record: str | os.PathLike
) -> dict:
    """:func:`prefetch_file` for one of the authors' instruction files (``kind``: ``authors``,
    their task_prompts.json, or ``authors_bright``, their evaluate_bright.py), checked to parse
    as one (:func:`hrsa.evaluate.authors.check_file`); logs what was downloaded."""
    import logging

    from .evaluate.authors import check_file

    info = prefetch_file(url, out, record, check=lambda path: check_file(kind, path, url))
    logging.getLogger("hrsa.prefetch").info(
        "%s: %s (%d bytes, sha256 %s)", kind, url, info["bytes"], info["sha256"]
    )
    return info
