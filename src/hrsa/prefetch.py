"""Prefetch hub models and datasets on a node with internet, so compute jobs can run offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
    out = Path(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, out)
    return info
