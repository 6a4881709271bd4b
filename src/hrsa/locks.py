"""Exclusive advisory locks on the work directories a job writes, and umask-respecting temp dirs.

A job that writes a directory in place (a training run's ``<out>.work``, the temporary sibling
an activation store or a tiny model is written into before its rename) holds an exclusive
``flock`` on a lock file for as long as it writes. A second writer of the same directory (an
orphaned job still running after Snakemake was killed, and the rerun that started after
``--unlock``) fails fast with :class:`~hrsa.errors.LockError` naming the holder's pid and host
instead of writing into, or deleting, a directory that is in use; cleanup of leftovers removes
only directories whose lock is free (their writer is gone).

``flock`` locks belong to the open file and are released by the kernel when the holder dies, so
a killed job never leaves a lock behind; the lock file itself holds ``pid host`` for the error
message only. A lock file is removed when its lock is released: a process that locked the file
just before it was unlinked notices (its descriptor no longer names the path) and retries, so
two processes never both believe they hold the lock. Advisory locks are honoured by every
process of this package (NFS: Linux maps ``flock`` onto NFS byte-range locks); on a file
system that supports no locks at all the directory is written unlocked, with a warning.

Permissions: :func:`tempfile.mkdtemp` creates ``drwx------`` whatever the umask, which hides
stores and models from the other users of a shared results directory; :func:`make_temp_dir`
gives its directories the mode a plain ``mkdir`` would (``0o777 & ~umask``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import LockError

log = logging.getLogger("hrsa.locks")

#: the lock file inside a locked temporary directory
LOCK_NAME = ".lock"

_UMASK: int | None = None


def current_umask() -> int:
    """The process's umask, read once: from ``/proc/self/status`` (no window in which another
    thread would create files under a different umask), else by setting and restoring it."""
    global _UMASK
    if _UMASK is None:
        value = None
        with contextlib.suppress(OSError, ValueError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("Umask:"):
                    value = int(line.split()[1], 8)
                    break
        if value is None:
            value = os.umask(0o022)
            os.umask(value)
        _UMASK = value
    return _UMASK


def follow_umask(path: str | os.PathLike) -> None:
    """Give ``path`` the mode a plain ``mkdir`` (directory) or ``open`` (file) would have."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~current_umask())


#: flock errors of a file system without locks (then the directory is written unlocked)
_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def _holder_text(fd: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = os.pread(fd, 256, 0).decode().split()
        if len(text) >= 2:
            return f"pid {text[0]} on host {text[1]}"
    return "another process (pid and host not yet recorded)"


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path``, guarding ``guards`` (a directory named
    in the error message). Use as a context manager or with :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, path: str | os.PathLike, guards: str | os.PathLike | None = None):
        self.path = Path(path)
        self.guards = Path(guards) if guards is not None else self.path
        self.fd: int | None = None

    def acquire(self) -> FileLock:
        """Take the lock and record this process's pid and host in the file; raises
        :class:`LockError` naming the holder when another process holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in _UNSUPPORTED:
                    log.warning(
                        "%s: the file system does not support locks (%s); writing %s unlocked",
                        self.path,
                        exc.strerror,
                        self.guards,
                    )
                    break
                holder = _holder_text(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise LockError(
                    f"{self.guards} is being written by {holder} (lock {self.path}); a second "
                    "writer would corrupt or delete it. Wait for that job to finish, or end it "
                    "(kill <pid> on that host) and rerun"
                ) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the file was removed by its previous holder: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self, remove: bool = True) -> None:
        """Release the lock; ``remove``: delete the lock file first (while still holding it)."""
        if self.fd is None:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_is_free(path: str | os.PathLike) -> bool:
    """Whether nobody holds the lock on ``path`` (an existing lock file) right now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # also releases the lock taken to test it
    return True


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> tuple[Path, FileLock]:
    """A new directory ``parent/<prefix>XXXXXXXX``, mode ``0o777 & ~umask``, locked by this
    process (``<dir>/.lock``) from the moment it carries ``prefix``: it is created under a
    staging name, locked, then renamed, so :func:`remove_stale_temp_dirs` never sees it
    unlocked. Release the returned lock (``lock.release()``) once the directory is renamed
    into place or removed."""
    parent = Path(parent)
    staging = Path(tempfile.mkdtemp(prefix=f"{prefix}staging-", dir=parent))
    try:
        follow_umask(staging)
        lock = FileLock(staging / LOCK_NAME).acquire()
        final = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        os.rmdir(final)  # a unique free name; the rename below takes it atomically
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    lock.path, lock.guards = final / LOCK_NAME, final
    return final, lock


def remove_stale_temp_dirs(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the directories ``parent/<prefix>*`` whose writer is gone (their lock is free,
    or they predate locks); a directory a live writer holds is left alone. Returns the removed
    ones."""
    removed = []
    for stale in sorted(Path(parent).glob(f"{glob.escape(prefix)}*")):
        if not stale.is_dir():
            continue
        lock_file = stale / LOCK_NAME
        if not lock_file.exists():
            if stale.name.startswith(f"{prefix}staging-"):
                continue  # a writer between mkdtemp and its lock (microseconds): not ours
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
            continue
        lock = FileLock(lock_file, stale)
        try:
            lock.acquire()
        except (LockError, FileNotFoundError):
            log.info("%s is in use by another writer: left alone", stale)
            continue
        try:
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
        finally:
            lock.release()
    return removed


@contextlib.contextmanager
def locked(path: str | os.PathLike, guards: str | os.PathLike | None = None) -> Iterator[FileLock]:
    """``with locked(lock_file, guarded_dir):`` hold the lock for the block (removed after)."""
    lock = FileLock(path, guards).acquire()
    try:
        yield lock
    finally:
        lock.release()
