"""An append-only JSONL cache of finished requests, keyed by what determines the reply.

Every finished request - answered or failed after its last attempt - is one JSON line, written
with a single ``write`` on an ``O_APPEND`` descriptor, then flushed and ``fsync``-ed before the
next one is accepted: a killed job loses at most the requests still in flight. A line cut short
by a kill (no trailing newline) is ignored when the cache is read and cut off before the next
append; a malformed line elsewhere is an error naming ``file:line`` (nothing is silently lost).

The key (:func:`request_key`) is the sha256 of the request kind (``generate``/``judge``), the
problem id, the model identity, the request settings (sampling, token limits, thinking switch,
extra body; never the server's URL or port) and the prompt hash (sha256 of the rendered
messages). The last line of a key wins, so a failure later answered counts as answered.

While a job writes, it holds an exclusive lock on ``<cache>.lock`` (:mod:`hrsa.locks`): a second
writer of the same cache (an orphaned job, a concurrent run) fails at once naming the holder.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from ..errors import DataError
from ..locks import FileLock
from .prompts import digest

log = logging.getLogger("hrsa.cot.cache")

OK, FAILED = "ok", "failed"


def request_key(
    kind: str, problem_id: str, model: str, settings: dict, messages
) -> tuple[str, str]:
    """``(key, prompt_hash)`` of a request (see the module docstring)."""
    prompt_hash = digest(messages)
    key = digest(
        {
            "kind": kind,
            "id": problem_id,
            "model": model,
            "settings": settings,
            "prompt": prompt_hash,
        }
    )
    return key, prompt_hash


def read_cache(path: str | os.PathLike) -> tuple[dict[str, dict], int]:
    """``({key: last record}, bytes of a torn last line)``; a missing file is an empty cache."""
    path = Path(path)
    if not path.exists():
        return {}, 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    torn = len(data) - end
    if torn:
        log.warning(
            "%s: ignoring a torn last line (%d bytes, a write cut short by a kill)", path, torn
        )
    records: dict[str, dict] = {}
    for lineno, raw in enumerate(data[:end].splitlines(), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            key = record["key"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{path}:{lineno}: not a cache record ({exc}); the cache is append-only and "
                "written by hrsa.cot.cache only - move the file aside to start over"
            ) from exc
        records[key] = record
    return records, torn


class RequestCache:
    """The cache at ``path``, opened for appending under an exclusive lock (a context manager)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self._fd: int | None = None
        self._lock = FileLock(self.path.with_name(self.path.name + ".lock"), self.path)
        self._mutex = threading.Lock()
        self.appended = 0

    def open(self) -> RequestCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self.records, torn = read_cache(self.path)
            if torn:  # cut the torn line off, so the next record starts on its own line
                os.truncate(self.path, self.path.stat().st_size - torn)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except BaseException:
            self._lock.release()
            raise
        return self

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._lock.release()

    def __enter__(self) -> RequestCache:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict) -> None:
        """Append ``record`` (it must have ``key``) durably: one write, then fsync."""
        if self._fd is None:
            raise RuntimeError("the cache is not open")
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        with self._mutex:
            start = os.fstat(self._fd).st_size
            try:
                view = memoryview(line)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                os.fsync(self._fd)
            except BaseException:  # a failed write (disk full): leave no partial line behind
                os.ftruncate(self._fd, start)
                raise
            self.records[record["key"]] = record
            self.appended += 1
