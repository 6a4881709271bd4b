"""Atomic writing of report files: a reader never sees a half-written table or figure."""

from __future__ import annotations

import os

from ..atomic import atomic_path

__all__ = ["atomic_path", "write_text"]


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, newline-terminated)."""
    if not text.endswith("\n"):
        text += "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
