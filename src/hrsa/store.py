"""Activation store format: writer, reader, manifest, checksums, alignment check.

Layout of a store directory (docs/contracts.md, contract 1)::

    hidden_000.npy ... hidden_{L}.npy   (N, D) per hidden state; 0 = embedding output
    token_ids.npy, sequence_index.npy, position.npy   (N,) int64: which token each row is
    sequences.json      one record per kept sequence: dataset id and label
    manifest.json       model, source, revision, tokenizer hash, dataset, attention, N, D, dtypes,
                        per-file shape and sha256, library version

Writing streams: each block of hidden states is appended to the per-layer files and forgotten,
so peak memory depends on the block, not on N or L. Values are stored as fp16 unless a layer
holds a value beyond fp16's range, in which case that layer is promoted to fp32 and the manifest
records it (never a silent inf). A store is written into a temporary sibling directory and
renamed into place only when complete; that directory is locked (:mod:`hrsa.locks`) while it is
written, so the cleanup of a killed writer's leftovers never removes a live writer's directory.

Reading checks what it reads: :class:`ActivationStore` checks every file's size against its
manifest at open and each consumer verifies the sha256 of every file (hashed as it streams the
file, the rest at the end; :func:`verified`), so a corrupted or truncated store is an error
naming the file and the way to rebuild it, never a silent result.

Throughput. The range check is one max |x| per hidden state and block
(:meth:`StoreWriter.dtypes_for`); a producer may compute it on its device and hand over blocks
already converted there (:func:`hrsa.activations.extract` does), which are then written without a
copy. Hashing (incremental sha256) and file writes run on a small pool of threads, each owning a
fixed set of layer files (sha256 and file writes release the GIL, so the threads run in parallel
with each other and with the producer). The store must absorb
``tokens/s x (L+1) x D x 2`` bytes/s in fp16; at ~29k tokens/s for a 7B forward on an H100
(other sizes scaled by parameters):

=========  ======  ====  ===========  ===============
backbone   D       L+1   tokens/s     store writes
=========  ======  ====  ===========  ===============
1.5B       1536    29    ~135k        ~12.1 GB/s
7B         3584    29    ~29k         ~6.0 GB/s
8B         4096    37    ~25k         ~7.7 GB/s
14B        5120    49    ~14.5k       ~7.3 GB/s
=========  ======  ====  ===========  ===============

(GB = 10^9 bytes; fp32-promoted layers need twice their share.) sha256 runs at ~1-2 GB/s per
core with SHA extensions, so keeping up takes 4-8 writer threads (``write_threads``, by default
one per available core up to 8) and a file system that sustains these rates; short of either,
extraction runs at the pace of the disk or of the hashes, not of the GPU.

Extraction (the model forward pass that fills a store) lives in :mod:`hrsa.activations`, which
re-exports every public name of this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import queue
import shutil
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_path
from .errors import PairMismatchError, StoreError
from .locks import LOCK_NAME, make_temp_dir, remove_stale_temp_dirs

# The logger keeps the name it had before the store format moved out of hrsa.activations, so
# logging configuration and log output are unchanged.
log = logging.getLogger("hrsa.activations")

FP16_MAX = float(np.finfo(np.float16).max)
INDEX_FILES = ("token_ids.npy", "sequence_index.npy", "position.npy")


def hidden_file(i: int) -> str:
    return f"hidden_{i:03d}.npy"


def _sha256(path: Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


class _LayerFile:
    """An .npy file written row-block by row-block, hashed as it is written."""

    def __init__(self, path: Path, n_rows: int, dim: int, dtype: np.dtype):
        self.path, self.n_rows, self.dim = path, n_rows, dim
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self.promoted_at: int | None = None
        self._open()

    def _open(self) -> None:
        self.fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self.hash = hashlib.sha256()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.n_rows, self.dim),
        }
        np.lib.format.write_array_header_1_0(self.fh, header)
        self.fh.flush()
        self.header_len = self.fh.tell()
        with open(self.path, "rb") as fh:
            self.hash.update(fh.read())

    def append(self, block: np.ndarray, dtype: np.dtype) -> None:
        """Append rows, stored as ``dtype``: the file's dtype, or float32 for a float16 file that
        is promoted by this block (the range check is :meth:`StoreWriter.dtypes_for`'s)."""
        if np.dtype(dtype) != self.dtype:
            if not (self.dtype == np.float16 and np.dtype(dtype) == np.float32):
                raise StoreError(
                    f"{self.path.name}: cannot store {dtype} rows in a {self.dtype} file"
                )
            self._promote()
        data = np.ascontiguousarray(block, dtype=self.dtype)  # no copy when already converted
        view = memoryview(data).cast("B")
        self.fh.write(view)
        self.hash.update(view)
        self.rows += block.shape[0]

    def _promote(self, block_rows: int = 65536) -> None:
        """Rewrite the rows written so far as fp32 (streamed, block by block); continue in fp32."""
        self.fh.close()
        old_path = self.path.with_name(self.path.name + ".fp16")
        os.replace(self.path, old_path)
        old_dtype, old_header, rows = self.dtype, self.header_len, self.rows
        self.dtype = np.dtype(np.float32)
        self.promoted_at = rows
        self._open()
        with open(old_path, "rb") as src:
            src.seek(old_header)
            for start in range(0, rows, block_rows):
                n = min(block_rows, rows - start)
                part = np.fromfile(src, dtype=old_dtype, count=n * self.dim)
                data = part.astype(np.float32).tobytes()
                self.fh.write(data)
                self.hash.update(data)
        old_path.unlink()
        log.warning("%s: a value beyond fp16 range at row %d; stored as fp32", self.path.name, rows)

    def close(self) -> dict:
        self.fh.close()
        if self.rows != self.n_rows:
            raise StoreError(f"{self.path}: wrote {self.rows} rows, expected {self.n_rows}")
        return {
            "shape": [self.n_rows, self.dim],
            "dtype": self.dtype.name,
            "sha256": self.hash.hexdigest(),
            "promoted_from_float16_at_row": self.promoted_at,
        }


def block_maxabs(block: np.ndarray) -> float:
    """max |x| over a block; NaN when it holds a NaN, inf when it holds an inf (0 when empty).

    ``max`` and ``min`` propagate NaN, so two vectorised reductions (no temporary) check
    finiteness and range at once.
    """
    if not block.size:
        return 0.0
    return float(np.maximum(block.max(), -block.min()))


def default_write_threads(n_hidden_states: int) -> int:
    """Writer threads: one per core available to this process, at most 8 and one per file."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores, n_hidden_states))


class _Block:
    """One appended block of rows, shared by the writer threads; ``on_written`` runs once every
    thread is done with it (written, or skipped after an error), so its memory can be reused."""

    __slots__ = ("hidden", "dtypes", "_left", "_lock", "_on_written")

    def __init__(self, hidden, dtypes, n_threads, on_written):
        self.hidden, self.dtypes = hidden, dtypes
        self._left, self._lock, self._on_written = n_threads, threading.Lock(), on_written

    def done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self.hidden = None
            if self._on_written is not None:
                self._on_written()


class StoreWriter:
    """Streams hidden states into a temporary directory; :meth:`commit` renames it into place.

    Hidden state ``i`` is written by thread ``i % write_threads``: each file's rows stay in order
    and each thread hashes and writes whole layer blocks, so the threads never share a file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_rows: int,
        dim: int,
        n_hidden_states: int,
        storage_dtype: str = "float16",
        write_threads: int | None = None,
    ):
        if storage_dtype not in ("float16", "float32"):
            raise StoreError(f"storage_dtype must be float16 or float32, got {storage_dtype!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A job killed mid-write (e.g. at a SLURM time limit) leaves its temporary sibling behind:
        # reclaim the disk. Only leftovers whose lock is free are removed; the temporary
        # directory of a writer still running (an orphaned job) is left alone.
        prefix = f".{self.path.name}.tmp-"
        remove_stale_temp_dirs(self.path.parent, prefix)
        # mode 0o777 & ~umask (not mkdtemp's 0o700), locked (``.lock``) until commit or abort
        self.tmp, self._lock = make_temp_dir(self.path.parent, prefix)
        self.n_rows, self.dim, self.n_hidden = n_rows, dim, n_hidden_states
        self.storage_dtype = np.dtype(storage_dtype)
        self.layers = []
        try:
            for i in range(n_hidden_states):
                self.layers.append(
                    _LayerFile(self.tmp / hidden_file(i), n_rows, dim, self.storage_dtype)
                )
        except BaseException:
            for layer in self.layers:
                layer.fh.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._lock.release()
            raise
        # layers promoted to fp32 so far, in the order the blocks are appended (dtypes_for)
        self._wide = np.zeros(n_hidden_states, dtype=bool)
        self.index: dict[str, list[np.ndarray]] = {f: [] for f in INDEX_FILES}
        n_threads = write_threads or default_write_threads(n_hidden_states)
        self.write_threads = max(1, min(int(n_threads), n_hidden_states))
        # Each thread's queue holds at most one block beyond the one it writes, so memory stays
        # bounded by the block size.
        self._queues: list[queue.Queue] = [
            queue.Queue(maxsize=1) for _ in range(self.write_threads)
        ]
        self._workers: list[threading.Thread] = []
        self._error: BaseException | None = None

    def dtypes_for(self, maxabs: Sequence[float]) -> list[np.dtype]:
        """The dtype in which each hidden state of the next block is to be stored.

        ``maxabs``: each hidden state's max |x| in the block (NaN or inf when it holds one).
        The storage dtype, or float32 for a float16 layer with a value beyond fp16's range in
        this block or an earlier one (the layer is promoted from here on). Raises
        :class:`StoreError` on NaN or Inf. Call it once per block, in the order the blocks are
        appended; :meth:`append` calls it for blocks given without ``dtypes``.
        """
        maxabs = np.asarray(maxabs, dtype=np.float64)
        if maxabs.shape != (self.n_hidden,):
            raise StoreError(f"got {maxabs.size} max-abs values, expected {self.n_hidden}")
        bad = np.flatnonzero(~np.isfinite(maxabs))
        if bad.size:
            raise StoreError(f"{hidden_file(int(bad[0]))}: NaN or Inf in the model's hidden states")
        if self.storage_dtype == np.float16:
            self._wide |= maxabs > FP16_MAX
        return [np.dtype(np.float32) if w else self.storage_dtype for w in self._wide]

    def append(
        self,
        hidden: Sequence[np.ndarray],
        token_ids: np.ndarray,
        sequence_index: np.ndarray,
        position: np.ndarray,
        *,
        dtypes: Sequence[np.dtype] | None = None,
        on_written=None,
    ) -> None:
        """Queue one block of rows (all hidden states) for writing.

        ``dtypes``: what :meth:`dtypes_for` returned for this block, when the caller checked
        the range itself (on its device, :func:`hrsa.activations.extract`) and converted the
        blocks to these dtypes (then they are written as they are, without a copy); without it
        the range is checked here and the writer threads convert. Hashing and file writes run
        on the writer threads, overlapping the next forward pass; ``on_written()`` is called (on
        a writer thread) once the block's memory is no longer needed, also after a failed
        write. Blocks while the writer threads are two blocks behind.
        """
        if len(hidden) != self.n_hidden:
            raise StoreError(f"got {len(hidden)} hidden states, expected {self.n_hidden}")
        self._raise_worker_error()
        if dtypes is None:
            dtypes = self.dtypes_for([block_maxabs(np.asarray(block)) for block in hidden])
        if not self._workers:
            self._workers = [
                threading.Thread(target=self._drain, args=(t,), daemon=True)
                for t in range(self.write_threads)
            ]
            for worker in self._workers:
                worker.start()
        block = _Block(list(hidden), [np.dtype(d) for d in dtypes], self.write_threads, on_written)
        for q in self._queues:
            q.put(block)
        for name, arr in zip(INDEX_FILES, (token_ids, sequence_index, position), strict=True):
            self.index[name].append(np.asarray(arr, dtype=np.int64))

    def _drain(self, thread: int) -> None:
        mine = range(thread, self.n_hidden, self.write_threads)
        q = self._queues[thread]
        while (block := q.get()) is not None:
            try:
                if self._error is None:  # after an error, keep draining so producers never block
                    for i in mine:
                        self.layers[i].append(block.hidden[i], block.dtypes[i])
            except BaseException as exc:  # re-raised in the producer thread
                if self._error is None:
                    self._error = exc
            finally:
                block.done()

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _finish(self) -> None:
        if self._workers:
            for q in self._queues:
                q.put(None)
            for worker in self._workers:
                worker.join()
            self._workers = []
        self._raise_worker_error()

    def commit(self, sequences: list[dict], meta: dict) -> Path:
        try:
            self._finish()
            files = {}
            for i, layer in enumerate(self.layers):
                files[hidden_file(i)] = layer.close()
            for name, parts in self.index.items():
                arr = np.concatenate(parts) if parts else np.zeros(0, np.int64)
                np.save(self.tmp / name, arr)
                files[name] = {
                    "shape": list(arr.shape),
                    "dtype": "int64",
                    "sha256": _sha256(self.tmp / name),
                }
            (self.tmp / "sequences.json").write_text(json.dumps(sequences))
            files["sequences.json"] = {"sha256": _sha256(self.tmp / "sequences.json")}
            dtypes = {files[hidden_file(i)]["dtype"] for i in range(self.n_hidden)}
            manifest = {
                **meta,
                "n_rows": self.n_rows,
                "dim": self.dim,
                "n_hidden_states": self.n_hidden,
                "n_sequences": len(sequences),
                "dtype": dtypes.pop() if len(dtypes) == 1 else "mixed",
                "promoted_layers": [
                    i
                    for i in range(self.n_hidden)
                    if files[hidden_file(i)]["promoted_from_float16_at_row"] is not None
                ],
                "files": files,
                "hrsa_version": __version__,
            }
            (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            if self.path.exists():
                shutil.rmtree(self.path)
            os.replace(self.tmp, self.path)
            self._lock.path = self.path / LOCK_NAME  # renamed with the directory
            self._lock.release()  # removes the lock file from the store
            return self.path
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        try:
            self._finish()
        except BaseException:  # the error that made us abort is already propagating
            pass
        for layer in self.layers:
            if not layer.fh.closed:
                layer.fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._lock.release()


def write_store(
    path,
    layers: Sequence[np.ndarray],
    token_ids,
    sequence_index,
    position,
    sequences: list[dict],
    meta: dict | None = None,
    storage_dtype: str = "float32",
) -> Path:
    """Write a complete store from in-memory arrays (tests, synthetic data)."""
    layers = [np.asarray(x) for x in layers]
    n, d = layers[0].shape
    writer = StoreWriter(path, n, d, len(layers), storage_dtype)
    try:
        writer.append(
            layers, np.asarray(token_ids), np.asarray(sequence_index), np.asarray(position)
        )
    except BaseException:
        writer.abort()
        raise
    return writer.commit(sequences, {"model": "synthetic", "dataset": "synthetic", **(meta or {})})


def rebuild_hint(store: str | os.PathLike) -> str:
    """How to rebuild a corrupted or incomplete store (the end of every such error)."""
    return (
        f"The activation store {store} is corrupted or incomplete: rebuild it. In the workflow: "
        f"`rm -r {store}` and rerun (or `snakemake --force {store}` with your run's --configfile "
        "and profile); outside it: `hrsa extract ... --store` into the same path."
    )


def _problem_report(store: Path, problems: Sequence[str]) -> str:
    return "\n".join([*problems, rebuild_hint(store)])


#: bytes per read when a file is hashed outside a consumer's own reads
_HASH_BLOCK = 1 << 22


class _FileCheck:
    """The sha256 of one store file, computed from the bytes this process reads of it.

    :meth:`feed` (called with every read: :meth:`hrsa.metrics.streaming.Source.read_into`)
    hashes the part of a read that extends the prefix hashed so far, so a consumer that streams
    a file from start to end has hashed it at no extra pass; a read that skips ahead or goes
    back adds nothing. :meth:`finish` reads and hashes what was never read (all of a file the
    consumer did not touch) and compares the digest with the manifest's.
    """

    def __init__(self, path: Path, expected: str, size: int, header: bytes = b""):
        self.path, self.expected, self.size = path, expected, size
        self._hash = hashlib.sha256(header)
        self.hashed = len(header)
        self._lock = threading.Lock()
        self._problem: str | None = None
        self._done = False
        self.fed = False  # whether a consumer read any of it

    @property
    def complete(self) -> bool:
        return self._done or self.hashed >= self.size

    def feed(self, position: int, data) -> None:
        view = memoryview(data).cast("B")
        end = position + len(view)
        with self._lock:
            if self._done or position > self.hashed or end <= self.hashed:
                return
            self._hash.update(view[self.hashed - position :])
            self.hashed, self.fed = end, True

    def finish(self) -> str | None:
        """Hash the bytes not yet read; the problem (None when the file matches the manifest)."""
        with self._lock:
            if self._done:
                return self._problem
            self._done = True
            try:
                if self.hashed < self.size:
                    fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        buf = bytearray(min(_HASH_BLOCK, self.size - self.hashed))
                        while self.hashed < self.size:
                            n = os.preadv(fd, [buf], self.hashed)
                            if n <= 0:
                                break
                            self._hash.update(memoryview(buf)[:n])
                            self.hashed += n
                    finally:
                        os.close(fd)
            except OSError as exc:
                self._problem = f"{self.path}: unreadable ({exc.strerror or exc})"
                return self._problem
            if self.hashed != self.size:
                self._problem = (
                    f"{self.path}: {self.hashed} bytes, the manifest's shape needs {self.size} "
                    "(truncated)"
                )
            else:
                got = self._hash.hexdigest()
                if got != self.expected:
                    self._problem = (
                        f"{self.path}: sha256 {got[:12]}... does not match the manifest "
                        f"({self.expected[:12]}...)"
                    )
            return self._problem


def _read_manifest(path: Path) -> dict:
    mf = path / "manifest.json"
    if not mf.is_file():
        raise StoreError(
            f"{path}: no manifest.json (not an activation store, or incomplete)\n"
            + rebuild_hint(path)
        )
    try:
        manifest = json.loads(mf.read_bytes())
    except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise StoreError(_problem_report(path, [f"{mf}: unreadable manifest ({exc})"])) from exc
    problems = []
    if not isinstance(manifest, dict):
        problems.append(f"{mf}: not a JSON object")
    else:
        for key in ("n_rows", "dim", "n_hidden_states"):
            value = manifest.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(f"{mf}: {key} is {value!r}, not a non-negative integer")
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()
        ):
            problems.append(f"{mf}: 'files' is not a mapping of file name to its sha256")
        elif not problems:
            needed = [hidden_file(i) for i in range(manifest["n_hidden_states"])]
            needed += [*INDEX_FILES, "sequences.json"]
            absent = [name for name in needed if name not in files]
            if absent:
                problems.append(f"{mf}: lists no {absent[0]} (and {len(absent) - 1} more)")
    if problems:
        raise StoreError(_problem_report(path, problems))
    return manifest


class _NpyFile:
    """Header facts of one .npy file of a store, checked against the manifest at open."""

    __slots__ = ("dtype", "shape", "header_len", "header")

    def __init__(self, dtype, shape, header_len, header):
        self.dtype, self.shape, self.header_len, self.header = dtype, shape, header_len, header


def _inspect_npy(path: Path, info: dict, want_shape: tuple | None) -> tuple[_NpyFile | None, str]:
    """Parse an .npy header and check shape, dtype and size; (facts, problem or "")."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version} (a store writes 1.0)")
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            header_len = fh.tell()
            fh.seek(0)
            header = fh.read(header_len)
            size = os.fstat(fh.fileno()).st_size
    except (OSError, ValueError, SyntaxError) as exc:
        return None, f"{path}: unreadable .npy header ({exc})"
    if fortran:
        return None, f"{path}: stored in Fortran order, not as a store writes it"
    if "shape" in info and list(shape) != list(info["shape"]):
        return None, f"{path}: shape {shape} != manifest {tuple(info['shape'])}"
    if want_shape is not None and tuple(shape) != want_shape:
        return None, f"{path}: shape {shape}, the manifest's store is {want_shape}"
    if "dtype" in info and dtype.name != info["dtype"]:
        return None, f"{path}: dtype {dtype.name} != manifest {info['dtype']}"
    expected = header_len + int(np.prod(shape)) * dtype.itemsize
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        return None, (
            f"{path}: {size} bytes, but its {shape} {dtype.name} rows need {expected} ({what})"
        )
    return _NpyFile(dtype, tuple(shape), header_len, header), ""


class ActivationStore:
    """Read-only view of a committed store; hidden states are memory-mapped.

    Opening checks the manifest and every file it lists: present, a readable .npy header with
    the manifest's shape and dtype, and exactly the size that shape needs (a truncated layer
    file is an error naming it, not numpy's "mmap length is greater than file size").

    Checksums (``verify_reads``, on by default): every file is verified against the
    manifest's sha256 by what reads it, at no extra pass over the data. The small files
    (index arrays, ``sequences.json``) are hashed when read and a mismatch raises at once;
    each layer file is hashed as a consumer streams it (:meth:`layer` hands the reader a
    :class:`_FileCheck` that :class:`hrsa.metrics.streaming.Source` feeds, in file order), and
    :meth:`finish_verification` (or :func:`verified` around a consumer) compares the digests,
    hashing only what was not read. The HRSA engine reads every layer file whole in its first
    pass, so it pays no extra read; the probe (last layer only) and the pair check (index files
    only) read the other layer files once at the end, on several threads
    (``benchmarks/store_verify.py`` measures both). :meth:`verify` hashes everything afresh.
    Every error names the file and says how to rebuild the store (:func:`rebuild_hint`).
    """

    def __init__(self, path: str | os.PathLike, *, verify_reads: bool = True):
        problems = self._open(path, verify_reads)
        if problems:
            raise StoreError(_problem_report(self.path, problems))
        if verify_reads:
            self._checks = self._new_checks()

    def _open(self, path: str | os.PathLike, verify_reads: bool) -> list[str]:
        """Read the manifest (raises when unusable); the problems of the files it lists:
        presence, header, shape, dtype and size."""
        self.path = Path(path)
        self.manifest = _read_manifest(self.path)
        self.n_rows = int(self.manifest["n_rows"])
        self.dim = int(self.manifest["dim"])
        self.n_hidden_states = int(self.manifest["n_hidden_states"])
        self.verify_reads = verify_reads
        self._npy: dict[str, _NpyFile] = {}
        self._checks: dict[str, _FileCheck] = {}
        problems = []
        layers = {hidden_file(i) for i in range(self.n_hidden_states)}
        for name, info in self.manifest["files"].items():
            path = self.path / name
            if not path.is_file():
                problems.append(f"{path}: listed in the manifest, missing")
                continue
            if name.endswith(".npy"):
                want = (self.n_rows, self.dim) if name in layers else None
                facts, problem = _inspect_npy(path, info, want)
                if problem:
                    problems.append(problem)
                else:
                    self._npy[name] = facts
        return problems

    def _new_checks(self) -> dict[str, _FileCheck]:
        """A checksum per file that passed the open checks (the .npy headers, read at open,
        are hashed already)."""
        checks = {}
        for name, info in self.manifest["files"].items():
            path = self.path / name
            facts = self._npy.get(name)
            if facts is not None:
                size = facts.header_len + int(np.prod(facts.shape)) * facts.dtype.itemsize
                checks[name] = _FileCheck(path, info["sha256"], size, facts.header)
            elif not name.endswith(".npy"):
                with contextlib.suppress(OSError):
                    checks[name] = _FileCheck(path, info["sha256"], path.stat().st_size)
        return checks

    @property
    def dataset(self) -> str:
        return self.manifest.get("dataset", "?")

    def layer(self, i: int) -> np.ndarray:
        """Hidden state ``i`` as a read-only memory map; it carries its checksum as
        ``store_check``, which :class:`~hrsa.metrics.streaming.Source` feeds as it reads."""
        if not 0 <= i < self.n_hidden_states:
            raise StoreError(
                f"{self.path}: hidden state {i} out of range 0..{self.n_hidden_states - 1}"
            )
        name = hidden_file(i)
        facts = self._npy[name]
        arr = np.memmap(
            self.path / name,
            dtype=facts.dtype,
            mode="r",
            offset=facts.header_len,
            shape=facts.shape,
        )
        arr.store_check = self._checks.get(name)
        return arr

    def _read_small(self, name: str) -> bytes:
        """A small file's bytes, checked against the manifest's sha256 before any use."""
        path = self.path / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(
                _problem_report(self.path, [f"{path}: unreadable ({exc.strerror or exc})"])
            ) from exc
        check = self._checks.get(name)
        if check is not None:
            got = hashlib.sha256(data).hexdigest()
            if got != check.expected:
                raise StoreError(
                    _problem_report(
                        self.path,
                        [
                            f"{path}: sha256 {got[:12]}... does not match the manifest "
                            f"({check.expected[:12]}...)"
                        ],
                    )
                )
            check.feed(0, data)
        return data

    def _index(self, name: str) -> np.ndarray:
        return np.load(io.BytesIO(self._read_small(name)))

    @property
    def token_ids(self) -> np.ndarray:
        return self._index("token_ids.npy")

    @property
    def sequence_index(self) -> np.ndarray:
        return self._index("sequence_index.npy")

    @property
    def position(self) -> np.ndarray:
        return self._index("position.npy")

    @property
    def sequences(self) -> list[dict]:
        data = self._read_small("sequences.json")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise StoreError(
                _problem_report(self.path, [f"{self.path / 'sequences.json'}: unreadable ({exc})"])
            ) from exc

    def _finish(self, checks: dict[str, _FileCheck], started_only: bool = False) -> list[str]:
        todo = [c for c in checks.values() if not started_only or c.complete or c.fed]
        if not todo:
            return []
        workers = default_write_threads(len(todo))  # one per core, at most 8
        with ThreadPoolExecutor(workers, "hrsa-verify") as pool:
            return [p for p in pool.map(_FileCheck.finish, todo) if p]

    def verification_problems(self, *, started_only: bool = False) -> list[str]:
        """The files whose bytes do not match the manifest, completing the checksums of what
        this process read (``started_only``: only files it began to read, no other reads)."""
        return self._finish(self._checks, started_only)

    def finish_verification(self) -> None:
        """Compare every file's sha256 with the manifest: the files read whole were hashed as
        they were read; the rest of every other file is read and hashed now (threads).
        Raises :class:`StoreError` naming each file that does not match."""
        problems = self.verification_problems()
        if problems:
            raise StoreError(_problem_report(self.path, problems))

    def verify(self) -> None:
        """Recompute every file's sha256 from the start and compare with the manifest."""
        problems = self._finish(self._new_checks())
        if problems:
            raise StoreError(_problem_report(self.path, problems))


def store_problems(path: str | os.PathLike) -> list[str]:
    """Everything wrong with the store at ``path``, each problem naming the file: an absent or
    unreadable manifest, or every file it lists that is missing, truncated, malformed or does
    not match its sha256. Empty for a sound store (``hrsa verify-store`` prints these)."""
    store = ActivationStore.__new__(ActivationStore)
    try:
        problems = store._open(path, True)
    except StoreError as exc:  # the manifest's problems, without the rebuild hint
        return str(exc).splitlines()[:-1]
    return problems + store._finish(store._new_checks())


@contextlib.contextmanager
def verified(*stores: ActivationStore, read_only: bool = False) -> Iterator[None]:
    """Run a consumer of ``stores`` and verify every file of them against the manifests at
    the end (:meth:`ActivationStore.finish_verification`): the block's result is used only
    when nothing read was corrupted. When the block fails, the files it began to read are
    checked first (no other reads), so a corruption that caused the failure (a NaN from a
    flipped byte) is reported as such, naming the file. ``read_only``: verify only the files
    the block read (a light check; every layer file's size was checked at open)."""
    try:
        yield
    except Exception as exc:
        problems = {}
        for store in stores:
            found = store.verification_problems(started_only=True)
            if found:
                problems[store.path] = found
        if problems:
            raise StoreError(
                "\n".join(_problem_report(path, found) for path, found in problems.items())
            ) from exc
        raise
    for store in stores:
        if read_only:
            found = store.verification_problems(started_only=True)
            if found:
                raise StoreError(_problem_report(store.path, found))
        else:
            store.finish_verification()


def check_aligned(a: ActivationStore, b: ActivationStore) -> None:
    """Both stores must hold the same tokens in the same rows.

    The error names the dataset, the first sequence (dataset id) whose token ids differ and the
    token position of the first difference; or, when the token ids agree, the first sequence kept
    by one store and not the other.
    """
    ta, tb = a.token_ids, b.token_ids
    pa, pb = a.position, b.position
    sa, sb = a.sequence_index, b.sequence_index
    ids_a = [s["id"] for s in a.sequences]
    ids_b = [s["id"] for s in b.sequences]
    if (
        ids_a == ids_b
        and np.array_equal(ta, tb)
        and np.array_equal(pa, pb)
        and np.array_equal(sa, sb)
    ):
        return
    rows_b = {sid: np.flatnonzero(sb == j) for j, sid in enumerate(ids_b)}
    for j, sid in enumerate(ids_a):
        if sid not in rows_b:
            continue
        xa, xb = ta[sa == j], tb[rows_b[sid]]
        n = min(len(xa), len(xb))
        diff = np.flatnonzero(xa[:n] != xb[:n])
        if diff.size or len(xa) != len(xb):
            pos = int(diff[0]) if diff.size else n
            got_a = int(xa[pos]) if pos < len(xa) else "end of sequence"
            got_b = int(xb[pos]) if pos < len(xb) else "end of sequence"
            raise PairMismatchError(
                f"dataset {a.dataset!r}: token ids differ first in sequence {sid!r} at token "
                f"position {pos}: {a.path} has {got_a}, {b.path} has {got_b}. The two models of the "
                "pair do not tokenize identically; HRSA compares token by token and cannot proceed."
            )
    only = [s for s in ids_a if s not in rows_b] + [s for s in ids_b if s not in set(ids_a)]
    raise PairMismatchError(
        f"dataset {a.dataset!r}: the stores hold different rows ({a.n_rows} vs {b.n_rows} tokens, "
        f"{len(ids_a)} vs {len(ids_b)} sequences; first sequence not in both: "
        f"{only[0] if only else 'none, but in a different order'!r}). Extract both with the same "
        f"caps and seed ({a.path}, {b.path})."
    )


def write_pair_check(a: ActivationStore, b: ActivationStore, out: str | os.PathLike) -> None:
    """Record a passed alignment check (both manifests' identities) atomically as JSON."""
    record = {
        "aligned": True,
        "n_rows": a.n_rows,
        "n_sequences": a.manifest.get("n_sequences"),
        "dataset": a.dataset,
        "base": {
            "path": str(a.path),
            "model": a.manifest.get("model"),
            "tokenizer_sha256": a.manifest.get("tokenizer_sha256"),
        },
        "reasoning": {
            "path": str(b.path),
            "model": b.manifest.get("model"),
            "tokenizer_sha256": b.manifest.get("tokenizer_sha256"),
        },
        "same_tokenizer": a.manifest.get("tokenizer_sha256") == b.manifest.get("tokenizer_sha256"),
    }
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def pair_check(
    base: str | os.PathLike | ActivationStore,
    reasoning: str | os.PathLike | ActivationStore,
    out: str | os.PathLike | None = None,
) -> None:
    """The pair check of two stores: the same tokens row by row (:func:`check_aligned`), the
    files it reads (index files, ``sequences.json``) as their manifest says and every layer
    file of the right size (checked at open); then the pass is recorded in ``out``
    (:func:`write_pair_check`). It runs on the submit node (a local rule), so it does not hash
    the layer files (~188 GB for a 7B pair): the HRSA and probe jobs verify every byte they use."""
    a = base if isinstance(base, ActivationStore) else ActivationStore(base)
    b = reasoning if isinstance(reasoning, ActivationStore) else ActivationStore(reasoning)
    with verified(a, b, read_only=True):
        check_aligned(a, b)
    if out is not None:
        write_pair_check(a, b, out)
