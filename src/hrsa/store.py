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
renamed into place only when complete.

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

import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_path
from .errors import PairMismatchError, StoreError

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
        # A job killed mid-write (e.g. at a SLURM time limit) leaves its temporary sibling behind;
        # Snakemake runs one job per output, so any such leftover is stale: reclaim the disk.
        for stale in self.path.parent.glob(f".{self.path.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent))
        self.n_rows, self.dim, self.n_hidden = n_rows, dim, n_hidden_states
        self.storage_dtype = np.dtype(storage_dtype)
        self.layers = [
            _LayerFile(self.tmp / hidden_file(i), n_rows, dim, self.storage_dtype)
            for i in range(n_hidden_states)
        ]
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


class ActivationStore:
    """Read-only view of a committed store; hidden states are memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        mf = self.path / "manifest.json"
        if not mf.is_file():
            raise StoreError(
                f"{self.path}: no manifest.json (not an activation store, or incomplete)"
            )
        try:
            self.manifest = json.loads(mf.read_text())
        except json.JSONDecodeError as exc:
            raise StoreError(f"{mf}: unreadable manifest ({exc})") from exc
        self.n_rows = int(self.manifest["n_rows"])
        self.dim = int(self.manifest["dim"])
        self.n_hidden_states = int(self.manifest["n_hidden_states"])
        for name, info in self.manifest["files"].items():
            if not (self.path / name).is_file():
                raise StoreError(f"{self.path}: {name} listed in the manifest is missing")
            if "shape" in info and name.endswith(".npy"):
                shape = np.load(self.path / name, mmap_mode="r").shape
                if list(shape) != list(info["shape"]):
                    raise StoreError(
                        f"{self.path / name}: shape {shape} != manifest {info['shape']}"
                    )

    @property
    def dataset(self) -> str:
        return self.manifest.get("dataset", "?")

    def layer(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_hidden_states:
            raise StoreError(
                f"{self.path}: hidden state {i} out of range 0..{self.n_hidden_states - 1}"
            )
        return np.load(self.path / hidden_file(i), mmap_mode="r")

    def _index(self, name: str) -> np.ndarray:
        return np.load(self.path / name)

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
        return json.loads((self.path / "sequences.json").read_text())

    def verify(self) -> None:
        """Recompute every file's sha256 and compare with the manifest."""
        for name, info in self.manifest["files"].items():
            got = _sha256(self.path / name)
            if got != info["sha256"]:
                raise StoreError(
                    f"{self.path / name}: sha256 {got[:12]}... does not match the "
                    f"manifest ({info['sha256'][:12]}...): the store is corrupted"
                )


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
