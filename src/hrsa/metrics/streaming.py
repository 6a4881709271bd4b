"""Row-chunked reading of (N, D) matrices and the one-pass statistics engine of HRSA.

Every similarity in :mod:`hrsa.metrics` is a function of a few sufficient statistics of the
column-centred matrices ``Xc`` and ``Yc``: per matrix the column means, the zero-variance
features (:class:`Moments`) and its Gram matrix ``Xc^T Xc`` reduced to what the metrics need
(:class:`SelfTerms`); per pair the cross product ``Xc^T Yc`` (:class:`CrossTerms`).

:class:`LayerStream` computes all of them for every layer of two models, every layer pair
(i, j), in **one pass** over the rows: each chunk of rows of every layer is read once, converted
once and used for the moments, the self Grams, all L x L cross products and the gather of a row
subsample. The mean is not known until the end, so each layer is shifted by a provisional mean
``s`` (the mean of its first chunk) and the exact centred statistics come out of exact algebra:
with ``z = x - s`` and ``delta = mean(z)``,

    Xc^T Yc = sum z_x z_y^T - N delta_x delta_y^T      (a rank-1 correction)

and likewise for the row-norm sums of the debiased HSIC (:meth:`LayerStream._self_terms`,
:meth:`LayerStream._cross_terms`). ``delta`` is small (the first chunk's mean is close to the
mean), so the correction costs no accuracy, and a massive-activation offset (a feature at
+-3000) is removed by the shift before any product: ``x - s`` is exact in fp32 when x and s are
within a factor 2 of each other (Sterbenz).

Numerics: products in fp32 (fp64 when an input is fp64), every vector and scalar sum fp64, every
reduction (rank-1 correction, norms, SVD) fp64. The Gram and cross products of each chunk are
summed over chunks in fp64 accumulators (8 bytes per entry; the fp32 products are formed in row
tiles of the accumulator, so no product buffer of the accumulator's size). Measured against an
fp64 reference at N = 200k, D = 64, with +-3000 offsets on a few features *and* massive
activations (+-3000 on one feature of 0.5% of the tokens, like a BOS token), fp32 accumulators
updated in place deviate by 2.7e-6 in CKA with CPU BLAS (which adds into the accumulator every
k-block, ~16 roundings per chunk) and by 5.9e-7 with one rounding per chunk (cuBLAS' beta = 1
pattern, emulated); fp64 accumulation by 1e-7 in CKA, 3e-8 in correlation, 1e-8 in H_inv
(``tests/test_engine_one_pass.py``). So fp64 is the default; ``accumulate="fp32"`` (4 bytes per
entry, ``addmm_`` in place) is there for a device where the same test passes.

Memory: the accumulators of one pass (``D^2`` per self Gram and per layer pair) fit a budget:
on CUDA the device's free memory (``torch.cuda.mem_get_info``), on the CPU the configured
``accumulator_bytes`` (at most what the machine has available). When all of them do not fit,
the layer pairs are split into the fewest passes that do (:func:`plan_passes`); the first pass
reads every layer file, a later one only the files its pairs need.

Reading: file-backed sources (memory-mapped activation stores) are read with ``preadv``
(:func:`read_file_range`, the one place every store read goes through) by reader threads into
reusable buffers, a chunk ahead of the computation. On CUDA the buffers are pinned, each chunk
goes to the device asynchronously on a copy stream in the stored dtype (fp16: half the bytes),
is converted and shifted there, and nothing in the loop waits for the device (no per-chunk
``float(...)``); on the CPU each fp16 chunk is converted once into a reused fp32 buffer.

Checksums: a store layer's bytes are hashed by the reader thread that read them
(:attr:`Source.check`, fed in :meth:`Source.read_into`; a file's chunks are read in order), so
the first pass, which reads every layer file whole, verifies every file against the store's
manifest at no extra pass (:func:`hrsa.store.verified` compares the digests at the end).
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..config import schema_default
from ..errors import DataError, config_error

log = logging.getLogger("hrsa.metrics")

#: the schema's ``hrsa.chunk_size`` and ``hrsa.accumulator_bytes`` (256 MiB)
DEFAULT_CHUNK_SIZE = schema_default("hrsa.chunk_size")
DEFAULT_ACCUMULATOR_BYTES = schema_default("hrsa.accumulator_bytes")

#: matrix products of the stream: ``fp32`` (exact fp32 products) or ``tf32`` (TF32 tensor cores
#: for the Gram and cross products on CUDA; on the CPU the same as fp32)
PRODUCTS = ("fp32", "tf32")
#: how fp32 products are summed over chunks: ``fp64`` accumulators (8 bytes per entry, the
#: default) or ``fp32`` accumulators updated in place (4 bytes; see the module docstring)
ACCUMULATE = ("fp64", "fp32")

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_ALIGN = 512  # byte alignment of the per-source regions of a read buffer


def resolve_device(device: str | torch.device | None = None, *arrays) -> torch.device:
    """``"auto"``/None: the device of the first torch input, else CUDA when present, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        for a in arrays:
            if isinstance(a, torch.Tensor):
                return a.device
            if isinstance(a, Source) and isinstance(a.array, torch.Tensor):
                return a.array.device
        if device == "auto" and torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise config_error("device", f"{device!r} is not a torch device (auto, cpu, cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise config_error("device", f"{device!r} requested but CUDA is not available")
    return dev


def read_file_range(fd: int, path: str, view: memoryview, position: int) -> None:
    """Fill ``view`` (bytes) with the bytes of the open file ``fd`` at ``position``.

    Every read of a file-backed :class:`Source` goes through this function, so a test or a
    benchmark can count the bytes read per file by wrapping it (``monkeypatch``)."""
    done, want = 0, len(view)
    while done < want:
        got = os.preadv(fd, [view[done:]], position + done)
        if got <= 0:
            raise DataError(f"{path} ended early (truncated file?)")
        done += got


def _torch_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.empty(0, dtype=np.dtype(dtype).newbyteorder("="))).dtype


class Source:
    """An (N, D) matrix read in row chunks: numpy array, memory map, or torch tensor.

    Memory maps opened by ``np.load(..., mmap_mode="r")`` (activation stores) are read with
    ``os.preadv`` (:func:`read_file_range`) into reusable buffers, so pages are never mapped into
    this process and peak memory stays at a chunk however large the file is. ``describe_row``
    turns a row number into words for error messages (e.g. the sequence id and token position of
    a store row).
    """

    def __init__(self, array, name: str = "X", describe_row: Callable[[int], str] | None = None):
        if isinstance(array, Source):
            array = array.array
        if not isinstance(array, torch.Tensor | np.ndarray):
            array = np.asarray(array)
        if array.ndim != 2:
            raise DataError(
                f"{name}: expected a 2-D (tokens x features) matrix, got shape {tuple(array.shape)}"
            )
        if isinstance(array, torch.Tensor):
            ok = array.dtype.is_floating_point or not (
                array.dtype.is_complex or array.dtype == torch.bool
            )
            is64 = array.dtype == torch.float64
        else:
            ok = array.dtype.kind in "fiu"
            is64 = array.dtype == np.float64
        if not ok:
            raise DataError(f"{name}: dtype {array.dtype} is not a real number type")
        self.array = array
        self.name = name
        self.n_rows, self.dim = int(array.shape[0]), int(array.shape[1])
        self.compute_dtype = torch.float64 if is64 else torch.float32
        self.stored_dtype = _torch_dtype(array.dtype)
        self.itemsize = int(
            array.element_size() if isinstance(array, torch.Tensor) else array.itemsize
        )
        self.describe_row = describe_row or (lambda r: f"row {r}")
        # an activation store's layer carries the checksum of its file (hrsa.store._FileCheck):
        # every read is fed to it, so a file streamed start to end is verified at no extra pass
        self.check = getattr(array, "store_check", None)
        self._file = None
        if (
            isinstance(array, np.memmap)
            and isinstance(array.base, mmap.mmap)
            and array.flags.c_contiguous
            and array.filename
        ):
            self._file = (os.fspath(array.filename), int(array.offset))

    def __repr__(self) -> str:
        return f"Source({self.name}, {self.n_rows}x{self.dim})"

    @property
    def path(self) -> str | None:
        """The file a store layer is read from (None for in-memory data)."""
        return self._file[0] if self._file else None

    @property
    def row_bytes(self) -> int:
        return self.dim * self.itemsize

    @property
    def tensor_device(self) -> torch.device | None:
        """The device of a torch tensor input (None for numpy arrays and files)."""
        return self.array.device if isinstance(self.array, torch.Tensor) else None

    def open(self) -> int:
        return os.open(self._file[0], os.O_RDONLY)

    def read_into(self, fd: int, start: int, stop: int, out: torch.Tensor) -> torch.Tensor:
        """Rows ``[start, stop)`` of a file-backed source read into the first rows of ``out``
        (a contiguous CPU tensor of the stored dtype); returns that view."""
        view = out[: stop - start]
        flat = view.view(torch.uint8).reshape(-1)
        path, offset = self._file
        data = memoryview(flat.numpy())
        read_file_range(fd, path, data, offset + start * self.row_bytes)
        if self.check is not None:
            self.check.feed(offset + start * self.row_bytes, data)
        return view

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``[start, stop)`` of an in-memory source as a tensor (a view where possible)."""
        block = self.array[start:stop]
        if isinstance(block, torch.Tensor):
            return block.detach()
        if isinstance(block, np.ndarray):
            block = np.ascontiguousarray(block)
            if not block.flags.writeable:  # torch wants writable memory; never written
                block = block.copy()
            block = torch.from_numpy(block)
        return block

    def chunks(
        self, chunk_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first_row, rows)`` in the stored dtype. Rows may share memory with the input
        or with a buffer reused by the next chunk: copy what you keep, never modify in place."""
        stop = self.n_rows if stop is None else stop
        if chunk_size < 1:
            raise config_error("hrsa.chunk_size", f"must be >= 1, got {chunk_size}")
        if self._file is None:
            for a in range(start, stop, chunk_size):
                yield a, self.rows(a, min(a + chunk_size, stop))
            return
        buf = torch.empty(
            (min(chunk_size, max(stop - start, 1)), self.dim), dtype=self.stored_dtype
        )
        fd = self.open()
        try:
            for a in range(start, stop, chunk_size):
                yield a, self.read_into(fd, a, min(a + chunk_size, stop), buf)
        finally:
            os.close(fd)

    def gather(self, rows: np.ndarray, chunk_size: int) -> torch.Tensor:
        """Rows ``rows`` (sorted, unique) as a CPU tensor in the stored dtype, read in one
        sequential pass (no random access into memory maps)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == self.n_rows:
            parts = [
                c.clone() if c.device.type == "cpu" else c.cpu() for _, c in self.chunks(chunk_size)
            ]
            return torch.cat(parts) if parts else torch.empty((0, self.dim))
        parts = []
        for a, block in self.chunks(chunk_size):
            lo, hi = np.searchsorted(rows, [a, a + block.shape[0]])
            if hi > lo:
                idx = torch.from_numpy(rows[lo:hi] - a)
                parts.append(block[idx.to(block.device)].cpu())
        return torch.cat(parts)


def as_source(x, name: str) -> Source:
    return x if isinstance(x, Source) else Source(x, name)


@dataclass
class Moments:
    """Column means (fp64) and zero-variance features of one matrix."""

    n: int
    mean: torch.Tensor  # (D,) fp64
    constant: torch.Tensor  # (D,) bool: min == max over all rows
    compute_dtype: torch.dtype

    @property
    def n_constant(self) -> int:
        return int(self.constant.sum())

    def centre_(self, x: torch.Tensor) -> torch.Tensor:
        """Subtract the mean in place (``x`` in the compute dtype, on the mean's device)."""
        if x.dtype == torch.float64:
            return x.sub_(self.mean)
        return x.sub_(self._hi).sub_(self._lo)

    def __post_init__(self):
        self._hi = self.mean.to(torch.float32)
        self._lo = (self.mean - self._hi.to(torch.float64)).to(torch.float32)


def compute_moments(
    src: Source, device: torch.device, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Moments:
    """One pass over one matrix: fp64 column sums, column min/max; NaN/Inf raise a DataError
    naming the row. (The layer-by-layer engine gets the moments from :class:`LayerStream`.)"""
    if src.n_rows < 2:
        raise DataError(f"{src.name}: needs at least 2 rows (tokens), got {src.n_rows}")
    d, rows = src.dim, min(chunk_size, src.n_rows)
    total = torch.zeros(d, dtype=torch.float64, device=device)
    lo = torch.full((d,), math.inf, dtype=src.compute_dtype, device=device)
    hi = torch.full((d,), -math.inf, dtype=src.compute_dtype, device=device)
    buf = torch.empty(rows, d, dtype=src.compute_dtype, device=device)
    for _, raw in src.chunks(chunk_size):
        x = buf[: raw.shape[0]].copy_(raw)
        total += x.sum(0, dtype=torch.float64)
        torch.minimum(lo, x.amin(0), out=lo)  # (amin + amax is ~10x faster than aminmax)
        torch.maximum(hi, x.amax(0), out=hi)
    if not bool(torch.isfinite(total).all()):
        _raise_nonfinite(src, chunk_size)
    return Moments(src.n_rows, total / src.n_rows, lo == hi, src.compute_dtype)


def _raise_nonfinite(src: Source, chunk_size: int):
    for a, raw in src.chunks(chunk_size):
        bad = ~torch.isfinite(raw.to(torch.float64))
        if bool(bad.any()):
            r, c = (int(v) for v in bad.nonzero()[0])
            value = float(raw[r, c])
            raise DataError(
                f"{src.name}: non-finite value {value} at {src.describe_row(a + r)}, "
                f"feature {c}; similarity measures are undefined on NaN/Inf"
            )
    raise DataError(f"{src.name}: the column sums overflow (values too large)")  # pragma: no cover


@dataclass
class SelfTerms:
    """Statistics of ``Xc`` alone, reduced from its Gram matrix ``G = Xc^T Xc``.

    ``diag`` = per-feature sums of squares, ``frob_sq`` = ||G||_F^2, ``trace`` = ||Xc||_F^2,
    ``col_sum`` = Xc^T 1 (zero: the engine centres exactly), and ``hsic_u`` = the debiased
    self-HSIC (times n(n-3); NaN below 4 rows, where it is undefined: only debiased CKA uses it).
    """

    n: int
    diag: torch.Tensor
    frob_sq: float
    trace: float
    col_sum: torch.Tensor
    sum_row_sq_sq: float  # sum_t r_t^2, r_t = ||xc_t||^2
    hsic_u: float


def _debiased_hsic(
    n: int, tr_kl: float, one_k_one: float, one_l_one: float, one_kl_one: float
) -> float:
    """Unbiased HSIC of Song et al. (2012) times n(n-3), with K~, L~ the kernels with zeroed
    diagonals: tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1."""
    if n < 4:
        raise DataError(f"debiased HSIC needs at least 4 rows (tokens), got {n}")
    return tr_kl + one_k_one * one_l_one / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * one_kl_one


@dataclass
class CrossTerms:
    """``C = Xc^T Yc`` and, when requested (same-index layer pairs), the sums the debiased HSIC
    needs: ``sum_rr`` = sum_t r_x r_y, ``a_xy`` = sum_t r_y(t) xc_t, ``a_yx`` = sum_t r_x(t) yc_t."""

    cross: torch.Tensor
    sum_rr: float | None = None
    a_xy: torch.Tensor | None = None
    a_yx: torch.Tensor | None = None

    def hsic_u(self, n: int, sx: SelfTerms, sy: SelfTerms) -> float:
        if self.sum_rr is None:
            raise ValueError("debiased terms were not accumulated for this pair")
        c = self.cross
        tr_kl = float(c.square().sum()) - self.sum_rr
        one_k_one = float(sx.col_sum @ sx.col_sum) - sx.trace
        one_l_one = float(sy.col_sum @ sy.col_sum) - sy.trace
        one_kl_one = (
            float(sx.col_sum @ c @ sy.col_sum)
            - float(sx.col_sum @ self.a_xy)
            - float(sy.col_sum @ self.a_yx)
            + self.sum_rr
        )
        return _debiased_hsic(n, tr_kl, one_k_one, one_l_one, one_kl_one)


# ---------------------------------------------------------------------------------------------
# Memory budget and passes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamPass:
    """The accumulators of one pass: self Grams of ``self_x`` / ``self_y`` layers and the cross
    products of ``blocks``, each ``(i0, i1, j0, j1)``: X layers i0..i1-1 times Y layers
    j0..j1-1, one GEMM per token chunk."""

    self_x: tuple[int, ...]
    self_y: tuple[int, ...]
    blocks: tuple[tuple[int, int, int, int], ...]

    def pairs(self) -> Iterator[tuple[int, int]]:
        for i0, i1, j0, j1 in self.blocks:
            for i in range(i0, i1):
                for j in range(j0, j1):
                    yield i, j

    def layers(self) -> tuple[set[int], set[int]]:
        """The X and Y layers this pass's accumulators need."""
        x, y = set(self.self_x), set(self.self_y)
        for i0, i1, j0, j1 in self.blocks:
            x.update(range(i0, i1))
            y.update(range(j0, j1))
        return x, y

    def elements(self, dim_x: int, dim_y: int) -> int:
        n = len(self.self_x) * dim_x * dim_x + len(self.self_y) * dim_y * dim_y
        return n + sum((i1 - i0) * (j1 - j0) for i0, i1, j0, j1 in self.blocks) * dim_x * dim_y


def plan_passes(
    n_x: int, n_y: int, dim_x: int, dim_y: int, itemsize: int, budget: int
) -> list[StreamPass]:
    """The fewest passes whose accumulators each fit ``budget`` bytes.

    Items (the self Gram of every layer, then every layer pair (i, j) in row-major order) are
    packed greedily in that order: with equal widths every item has the same size, so this
    gives ceil(items / items-per-pass) passes, the minimum. A pass holds at least one item,
    whatever the budget."""
    items: list[tuple[str, int, int, int]] = [("x", i, -1, dim_x * dim_x) for i in range(n_x)]
    items += [("y", j, -1, dim_y * dim_y) for j in range(n_y)]
    items += [("c", i, j, dim_x * dim_y) for i in range(n_x) for j in range(n_y)]
    groups: list[list] = [[]]
    used = 0
    for item in items:
        size = item[3] * itemsize
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(item)
        used += size
    passes = []
    for g in groups:
        rows: dict[int, list[int]] = {}
        for kind, i, j, _ in g:
            if kind == "c":
                rows.setdefault(i, []).append(j)
        segments = [(i, js[0], js[-1] + 1) for i, js in rows.items()]  # contiguous by order
        blocks: list[list[int]] = []
        for i, j0, j1 in segments:
            if blocks and blocks[-1][1] == i and blocks[-1][2:] == [j0, j1]:
                blocks[-1][1] = i + 1
            else:
                blocks.append([i, i + 1, j0, j1])
        passes.append(
            StreamPass(
                tuple(i for k, i, _, _ in g if k == "x"),
                tuple(i for k, i, _, _ in g if k == "y"),
                tuple(tuple(b) for b in blocks),
            )
        )
    return passes


def _mem_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


#: the host-side subsample gather goes to files (see :func:`spilled_tensor`) when it would take
#: more than this share of the available RAM (at 7B: 29 hidden states x 2 models x 50k rows x
#: 3584 features in fp16 = 21 GB, held until the subsample analysis uses each layer)
GATHER_RAM_SHARE = 0.25


def gather_ram_limit() -> int:
    """Bytes of gathered rows kept in RAM (:data:`GATHER_RAM_SHARE` of MemAvailable; 4 GiB
    where that is unknown)."""
    ram = _mem_available()
    return int(GATHER_RAM_SHARE * ram) if ram is not None else 4 * 2**30


def spilled_tensor(shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor backed by a memory-mapped file in the temporary directory ($TMPDIR: node-
    local scratch on most clusters) that is unlinked at once: the page cache holds what fits,
    the kernel writes back the rest, nothing is left behind when the job is killed, and the
    space is freed when the tensor is."""
    nbytes = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
    with tempfile.TemporaryFile(prefix="hrsa-gather-") as fh:
        fh.truncate(max(nbytes, 1))
        buf = np.memmap(fh, dtype=np.uint8, mode="r+", shape=(max(nbytes, 1),))
    return torch.from_numpy(buf[:nbytes]).view(dtype).view(shape)


def device_memory_available(device: torch.device) -> int:
    """Free memory of a CUDA device, counting what torch's allocator holds but does not use."""
    free, _ = torch.cuda.mem_get_info(device)
    idle = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(idle, 0))


@contextlib.contextmanager
def _products(kind: str, device: torch.device):
    """The fp32 matmul precision of the stream's products (TF32 only on CUDA, when asked)."""
    if kind not in PRODUCTS:
        raise config_error("hrsa.products", f"must be one of {list(PRODUCTS)}, got {kind!r}")
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(
        "high" if kind == "tf32" and device.type == "cuda" else "highest"
    )
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


# ---------------------------------------------------------------------------------------------
# Reading: chunks of several sources in step, a chunk ahead of the computation
# ---------------------------------------------------------------------------------------------


class _ChunkReader:
    """Row chunks ``[a, a + r)`` of several row-aligned sources, delivered together on
    ``device`` in each source's stored dtype.

    * file sources are read (:func:`read_file_range`) by reader threads into ``depth`` slots of
      host buffers, ``depth - 1`` chunks ahead; in-memory host sources are used in place on the
      CPU and copied into the slots on CUDA;
    * CUDA: the slots are pinned; one asynchronous copy per chunk moves a slot to its device
      twin on a copy stream; the compute stream waits for it on the device (an event), and the
      copy into a device slot waits for the computation that used it before (another event).
      A reader thread overwrites a pinned slot only after its previous copy completed. The
      main thread never waits for the device;
    * ``gather``: sorted row indices; the rows of each source among them are collected while
      reading, on the host (device-resident tensors: on their device), in the stored dtype.

    ``transfer`` (a test hook, default: on CUDA) runs the CUDA staging logic (every host source
    read or copied into a slot, the slot copied to its device twin, chunks delivered from the
    twin) on any device; streams and events are used only on CUDA.
    """

    #: tests set this to True to run the staging path of CUDA on the CPU
    transfer: bool | None = None

    def __init__(
        self,
        sources: Sequence[Source],
        n_rows: int,
        rows: int,
        device: torch.device,
        *,
        depth: int = 2,
        workers: int | None = None,
        gather: np.ndarray | None = None,
    ):
        self.sources, self.n_rows, self.rows, self.device = list(sources), n_rows, rows, device
        self.cuda = device.type == "cuda"
        self.stage_all = self.cuda if self.transfer is None else bool(self.transfer)
        kinds = []
        for s in self.sources:
            if s.path is not None:
                kinds.append("file")
            elif s.tensor_device is not None and s.tensor_device.type != "cpu":
                kinds.append("device")
            else:
                kinds.append("host")
        self.kinds = kinds
        self.staged = [
            k
            for k, kind in enumerate(kinds)
            if kind == "file" or (kind == "host" and self.stage_all)
        ]
        self.offsets, total = {}, 0
        for k in self.staged:
            self.offsets[k] = total
            nbytes = rows * self.sources[k].row_bytes
            total += -(-nbytes // _ALIGN) * _ALIGN
        self.depth = max(1, depth) if self.staged else 1
        pin = self.cuda
        self.slots = (
            [torch.empty(total, dtype=torch.uint8, pin_memory=pin) for _ in range(self.depth)]
            if self.staged
            else []
        )
        self.to_device = self.stage_all and bool(self.staged)
        if self.to_device:
            self.device_slots = [
                torch.empty(total, dtype=torch.uint8, device=device) for _ in range(self.depth)
            ]
        if self.cuda and self.to_device:
            self.copy_stream = torch.cuda.Stream(device)
            self.copied = [torch.cuda.Event() for _ in range(self.depth)]
            self.consumed = [torch.cuda.Event() for _ in range(self.depth)]
        if workers is None:
            workers = min(8, len(self.staged)) if self.cuda else min(1, len(self.staged))
        self.workers = workers if self.staged else 0
        # A checked file (store layer not yet hashed) is read in chunk order even by several
        # reader threads, so its checksum sees the bytes in order: the task of a chunk waits for
        # the previous chunk of the same file to be read. Tasks start in submission order
        # (FIFO), so the one waited for is already running; ``_closing`` releases every wait
        # when the iteration ends early.
        self._turn = threading.Condition()
        self._next_row = {
            k: 0
            for k, kind in enumerate(kinds)
            if kind == "file"
            and self.sources[k].check is not None
            and not self.sources[k].check.complete
        }
        self._closing = False
        self.gather_rows = None if gather is None else np.asarray(gather, dtype=np.int64)
        self.gathered: list[torch.Tensor | None] = [None] * len(self.sources)
        if self.gather_rows is not None:
            m = self.gather_rows.size
            host = sum(m * s.row_bytes for k, s in enumerate(self.sources) if kinds[k] != "device")
            spill = host > gather_ram_limit()
            if spill:
                log.info(
                    "gathering the %d-row subsample (%.1f GB) into unlinked files under %s",
                    m,
                    host / 1e9,
                    tempfile.gettempdir(),
                )
            for k, s in enumerate(self.sources):
                if kinds[k] == "device":
                    g = torch.empty((m, s.dim), dtype=s.stored_dtype, device=s.tensor_device)
                elif spill:
                    g = spilled_tensor((m, s.dim), s.stored_dtype)
                else:
                    g = torch.empty((m, s.dim), dtype=s.stored_dtype)
                self.gathered[k] = g
        self.bytes_read = 0

    def _slot_view(self, flat: torch.Tensor, k: int) -> torch.Tensor:
        s = self.sources[k]
        off = self.offsets[k]
        return flat[off : off + self.rows * s.row_bytes].view(s.stored_dtype).view(self.rows, s.dim)

    def _bounds(self, a: int, b: int) -> tuple[int, int]:
        lo, hi = np.searchsorted(self.gather_rows, [a, b])
        return int(lo), int(hi)

    def _load(self, k: int, a: int, b: int, slot: int, fds: dict) -> torch.Tensor | None:
        """Reader task: rows [a, b) of source k into slot ``slot`` (or a view), gathered rows
        collected. Runs in a reader thread."""
        src, kind = self.sources[k], self.kinds[k]
        if kind == "device":
            return None
        if k in self.offsets:
            if self.cuda and self.to_device:
                self.copied[slot].synchronize()  # the slot's previous copy to the device is done
            out = self._slot_view(self.slots[slot], k)
            if kind == "file" and k in self._next_row:
                with self._turn:
                    self._turn.wait_for(lambda: self._closing or self._next_row[k] >= a)
                try:
                    raw = src.read_into(fds[k], a, b, out)
                finally:
                    with self._turn:
                        self._next_row[k] = max(self._next_row[k], b)
                        self._turn.notify_all()
            elif kind == "file":
                raw = src.read_into(fds[k], a, b, out)
            else:
                raw = out[: b - a]
                raw.copy_(src.rows(a, b))
        else:
            raw = src.rows(a, b)
        if self.gather_rows is not None:
            lo, hi = self._bounds(a, b)
            if hi > lo:
                idx = torch.from_numpy(self.gather_rows[lo:hi] - a)
                torch.index_select(raw, 0, idx, out=self.gathered[k][lo:hi])
        return raw

    def __iter__(self) -> Iterator[tuple[int, int, list[torch.Tensor]]]:
        n, rows, depth = self.n_rows, self.rows, self.depth
        starts = list(range(0, n, rows))
        fds = {k: self.sources[k].open() for k, kind in enumerate(self.kinds) if kind == "file"}
        pool = ThreadPoolExecutor(self.workers, "hrsa-reader") if self.workers else None
        pending: dict[int, list[tuple[int, Future | torch.Tensor | None]]] = {}

        def submit(c: int):
            a, b = starts[c], min(starts[c] + rows, n)
            tasks = []
            for k in range(len(self.sources)):
                if pool is not None and self.kinds[k] != "device":
                    tasks.append((k, pool.submit(self._load, k, a, b, c % depth, fds)))
                else:
                    tasks.append((k, None))
            pending[c] = tasks

        try:
            for c in range(min(depth, len(starts))):
                submit(c)
            for c, a in enumerate(starts):
                b, slot = min(a + rows, n), c % depth
                raws: list = [None] * len(self.sources)
                for k, task in pending.pop(c):
                    raws[k] = task.result() if task is not None else self._load(k, a, b, slot, fds)
                self.bytes_read += sum(
                    (b - a) * self.sources[k].row_bytes
                    for k, kind in enumerate(self.kinds)
                    if kind == "file"
                )
                if self.to_device and self.cuda:
                    with torch.cuda.stream(self.copy_stream):
                        self.copy_stream.wait_event(self.consumed[slot])
                        self.device_slots[slot].copy_(self.slots[slot], non_blocking=True)
                        self.copied[slot].record(self.copy_stream)
                    torch.cuda.current_stream(self.device).wait_event(self.copied[slot])
                elif self.to_device:
                    self.device_slots[slot].copy_(self.slots[slot])
                if self.to_device:
                    for k in self.staged:
                        raws[k] = self._slot_view(self.device_slots[slot], k)[: b - a]
                for k, kind in enumerate(self.kinds):
                    if kind == "device":
                        raws[k] = self.sources[k].array[a:b].to(self.device)
                        if self.gather_rows is not None:
                            lo, hi = self._bounds(a, b)
                            if hi > lo:
                                src_dev = self.sources[k].tensor_device
                                idx = torch.from_numpy(self.gather_rows[lo:hi] - a).to(src_dev)
                                self.gathered[k][lo:hi] = self.sources[k].array[a:b][idx]
                    elif not self.cuda and raws[k].device != self.device:  # pragma: no cover
                        raws[k] = raws[k].to(self.device)
                yield a, b - a, raws
                if self.cuda and self.to_device:
                    self.consumed[slot].record(torch.cuda.current_stream(self.device))
                if c + depth < len(starts):
                    submit(c + depth)
        finally:
            with self._turn:
                self._closing = True
                self._turn.notify_all()
            for tasks in pending.values():
                for _, task in tasks:
                    if task is not None:
                        task.cancel()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            for fd in fds.values():
                os.close(fd)


# ---------------------------------------------------------------------------------------------
# The one-pass engine
# ---------------------------------------------------------------------------------------------


class LayerStream:
    """Moments, self terms and the cross terms of every layer pair of two row-aligned lists of
    (N, D) matrices, from one pass over the rows (or the fewest passes the memory allows).

    ``pairs()`` runs the passes and yields ``(i, j, CrossTerms)`` for every layer pair; when the
    first item arrives, ``x_moments``, ``y_moments``, ``x_self`` and ``y_self`` are filled (and
    ``gathered_x``/``gathered_y``: the rows ``gather_rows`` of every layer, stored dtype, CPU
    unless a source is a device tensor). The yielded cross product is a view into a buffer
    reused by the next item: use it before asking for the next.

    ``memory_budget`` (bytes of accumulators per pass) overrides the budget derived from the
    device (CUDA: free memory) or ``accumulator_bytes`` (CPU). ``debiased``: also the sums the
    debiased HSIC of same-index pairs needs.
    """

    def __init__(
        self,
        xs: Sequence,
        ys: Sequence,
        *,
        device: torch.device | str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        accumulator_bytes: int = DEFAULT_ACCUMULATOR_BYTES,
        debiased: bool = True,
        gather_rows: np.ndarray | None = None,
        products: str = "fp32",
        accumulate: str = "fp64",
        memory_budget: int | None = None,
        readers: int | None = None,
        depth: int = 2,
    ):
        self.xs = [as_source(x, f"X{i}") for i, x in enumerate(xs)]
        self.ys = [as_source(y, f"Y{j}") for j, y in enumerate(ys)]
        if not self.xs or not self.ys:
            raise DataError("no layers given")
        if chunk_size < 1:
            raise config_error("hrsa.chunk_size", f"must be >= 1, got {chunk_size}")
        if products not in PRODUCTS:
            raise config_error(
                "hrsa.products", f"must be one of {list(PRODUCTS)}, got {products!r}"
            )
        self.n = n = self.xs[0].n_rows
        for s in (*self.xs, *self.ys):
            if s.n_rows != n:
                raise DataError(f"{s.name}: {s.n_rows} rows, expected {n} (row-aligned inputs)")
        for side in (self.xs, self.ys):
            for s in side:
                if s.dim != side[0].dim:
                    raise DataError(f"{s.name}: width {s.dim}, expected {side[0].dim}")
        if n < 2:
            raise DataError(f"{self.xs[0].name}: needs at least 2 rows (tokens), got {n}")
        self.device = resolve_device(device, *self.xs, *self.ys)
        self.dim_x, self.dim_y = self.xs[0].dim, self.ys[0].dim
        self.dtype = (
            torch.float64
            if any(s.compute_dtype == torch.float64 for s in (*self.xs, *self.ys))
            else torch.float32
        )
        if accumulate not in ACCUMULATE:
            raise ValueError(f"accumulate must be one of {ACCUMULATE}, got {accumulate!r}")
        self.debiased, self.products = debiased, products
        # fp32 products are summed over chunks in fp64 (product tiles) unless asked otherwise
        self.in_place = self.dtype == torch.float64 or accumulate == "fp32"
        self.acc_dtype = self.dtype if self.in_place else torch.float64
        self.gather_rows = gather_rows
        self.readers, self.depth = readers, depth
        lx, ly, dx, dy = len(self.xs), len(self.ys), self.dim_x, self.dim_y
        item = torch.tensor([], dtype=self.dtype).element_size()
        acc_item = torch.tensor([], dtype=self.acc_dtype).element_size()
        cuda = self.device.type == "cuda"
        # stream buffers per row: the converted block and the read slots (device side on CUDA)
        block_row = (lx * dx + ly * dy) * item
        staged_row = sum(
            s.row_bytes
            for s in (*self.xs, *self.ys)
            if s.path is not None or (cuda and s.tensor_device is None)
        )
        per_row = block_row + depth * staged_row
        avail = device_memory_available(self.device) if cuda else None
        cap = int(0.15 * avail) if cuda else max(accumulator_bytes, 64 * 2**20)
        rows = min(chunk_size, n)
        if rows * per_row > cap:
            rows = max(min(n, 128), cap // per_row)
            rows -= rows % 64 if rows > 64 else 0
        self.rows = rows
        reduce_reserve = 6 * 8 * dx * dy  # fp64 cross product, temporaries, SVD of a pair
        # fp32 product tiles (fp64 accumulation): up to 1 GiB on CUDA, 32 MiB on the CPU
        self.tile_elements = 0
        if not self.in_place:
            tile_cap = min(2**30, int(0.02 * avail)) if cuda else 32 * 2**20
            self.tile_elements = max(
                dx * dx, dy * dy, min(lx * dx, max(64, tile_cap // item // (ly * dy))) * ly * dy
            )
        reduce_reserve += self.tile_elements * item
        if memory_budget is not None:
            budget = memory_budget
        elif cuda:
            gathered = (
                0
                if gather_rows is None
                else sum(
                    len(gather_rows) * s.row_bytes
                    for s in (*self.xs, *self.ys)
                    if s.tensor_device is not None and s.tensor_device.type == "cuda"
                )
            )
            budget = int(0.9 * avail) - rows * per_row - reduce_reserve - gathered - 2**28
        else:
            budget = accumulator_bytes
            ram = _mem_available()
            if ram is not None:
                budget = min(budget, int(0.8 * ram) - rows * per_row - reduce_reserve)
        self.budget = max(int(budget), 1)
        self.passes = plan_passes(lx, ly, dx, dy, acc_item, self.budget)
        self.accumulator_bytes = max(p.elements(dx, dy) for p in self.passes) * acc_item
        self.bytes_read = 0
        self.x_moments: list[Moments] = []
        self.y_moments: list[Moments] = []
        self.x_self: list[SelfTerms | None] = [None] * lx
        self.y_self: list[SelfTerms | None] = [None] * ly
        self.gathered_x: list[torch.Tensor] | None = None
        self.gathered_y: list[torch.Tensor] | None = None

    def __repr__(self) -> str:
        return (
            f"LayerStream({len(self.xs)}x{len(self.ys)} layers, N={self.n}, "
            f"D={self.dim_x}/{self.dim_y}, {len(self.passes)} pass(es), rows={self.rows}, "
            f"device={self.device})"
        )

    # -- the stream ---------------------------------------------------------------------------

    def pairs(self) -> Iterator[tuple[int, int, CrossTerms]]:
        dev, cd, n = self.device, self.dtype, self.n
        lx, ly, dx, dy = len(self.xs), len(self.ys), self.dim_x, self.dim_y
        lm = min(lx, ly) if self.debiased else 0
        f64 = dict(dtype=torch.float64, device=dev)
        blocks = {
            "x": torch.empty(self.rows, lx, dx, dtype=cd, device=dev),
            "y": torch.empty(self.rows, ly, dy, dtype=cd, device=dev),
        }
        self._shift = {"x": [None] * lx, "y": [None] * ly}
        # first-pass sums (fp64), min/max of the shifted values
        st = {}
        for side, ll, d in (("x", lx, dx), ("y", ly, dy)):
            st[side] = {
                "s1": torch.zeros(ll, d, **f64),
                "q1": torch.zeros(ll, **f64),
                "q2": torch.zeros(ll, **f64),
                "a": torch.zeros(ll, d, **f64),
                "lo": torch.full((ll, d), math.inf, dtype=cd, device=dev),
                "hi": torch.full((ll, d), -math.inf, dtype=cd, device=dev),
            }
        extra = {
            "p": torch.zeros(lm, **f64),
            "bxy": torch.zeros(lm, dx, **f64),
            "byx": torch.zeros(lm, dy, **f64),
        }
        self._st, self._extra = st, extra
        store = torch.empty(
            max(p.elements(dx, dy) for p in self.passes), dtype=self.acc_dtype, device=dev
        )
        tile = torch.empty(self.tile_elements, dtype=cd, device=dev)
        self._cbuf = torch.empty(dx, dy, **f64)
        for p, ps in enumerate(self.passes):
            first = p == 0
            accs, used = {}, 0
            for side, layers, d in (("x", ps.self_x, dx), ("y", ps.self_y, dy)):
                for i in layers:
                    accs[(side, i)] = store[used : used + d * d].view(d, d)
                    used += d * d
            for blk in ps.blocks:
                i0, i1, j0, j1 = blk
                shape = ((i1 - i0) * dx, (j1 - j0) * dy)
                accs[blk] = store[used : used + shape[0] * shape[1]].view(shape)
                used += shape[0] * shape[1]
            store[:used].zero_()
            if first:
                keys = [("x", i) for i in range(lx)] + [("y", j) for j in range(ly)]
            else:
                need_x, need_y = ps.layers()
                keys = [("x", i) for i in sorted(need_x)] + [("y", j) for j in sorted(need_y)]
            srcs = [self.xs[i] if side == "x" else self.ys[i] for side, i in keys]
            reader = _ChunkReader(
                srcs,
                n,
                self.rows,
                dev,
                depth=self.depth,
                workers=self.readers,
                gather=self.gather_rows if first else None,
            )
            log.debug(
                "HRSA stream pass %d/%d: %d layer files, %d accumulators",
                p + 1,
                len(self.passes),
                len(srcs),
                len(accs),
            )
            with _products(self.products, dev):
                for a, r, raws in reader:
                    self._load_chunk(keys, raws, blocks, r, first and a == 0)
                    if first:
                        self._first_pass_sums(blocks, r, lm)
                    for side, layers in (("x", ps.self_x), ("y", ps.self_y)):
                        for i in layers:
                            z = blocks[side][:r, i]
                            self._accumulate(accs[(side, i)], z, z, tile)
                    for blk in ps.blocks:
                        i0, i1, j0, j1 = blk
                        xb = blocks["x"][:r, i0:i1].reshape(r, -1)
                        yb = blocks["y"][:r, j0:j1].reshape(r, -1)
                        self._accumulate(accs[blk], xb, yb, tile)
            self.bytes_read += reader.bytes_read
            if first:
                self._finish_moments()
                if self.gather_rows is not None:
                    self.gathered_x = reader.gathered[:lx]
                    self.gathered_y = reader.gathered[lx:]
            del reader
            for side, layers, selves in (
                ("x", ps.self_x, self.x_self),
                ("y", ps.self_y, self.y_self),
            ):
                for i in layers:
                    selves[i] = self._self_terms(side, i, accs[(side, i)])
            for blk in ps.blocks:
                i0, i1, j0, j1 = blk
                acc = accs[blk]
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        cz = acc[
                            (i - i0) * dx : (i - i0 + 1) * dx, (j - j0) * dy : (j - j0 + 1) * dy
                        ]
                        yield i, j, self._cross_terms(i, j, cz)

    def _accumulate(self, acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor, tile) -> None:
        """acc += a^T b: in place (fp64 products, or fp32 accumulators when asked), else fp32
        products in row tiles of ``acc`` added to the fp64 accumulator."""
        if self.in_place:
            acc.addmm_(a.T, b)
            return
        cols = acc.shape[1]
        step = max(1, min(acc.shape[0], self.tile_elements // cols))
        for t0 in range(0, acc.shape[0], step):
            t1 = min(t0 + step, acc.shape[0])
            prod = tile[: (t1 - t0) * cols].view(t1 - t0, cols)
            torch.mm(a[:, t0:t1].T, b, out=prod)
            if acc.device.type == "cpu":  # numpy's mixed fp64 += fp32 is ~4x faster here
                np.add(acc[t0:t1].numpy(), prod.numpy(), out=acc[t0:t1].numpy())
            else:
                acc[t0:t1].add_(prod)

    def run(self) -> LayerStream:
        """Run every pass, discarding the cross terms (moments, self terms and the gather)."""
        for _ in self.pairs():
            pass
        return self

    def _load_chunk(self, keys, raws, blocks, r: int, first_chunk: bool) -> None:
        """Convert the chunk of every source once into the compute dtype, shifted by its
        provisional mean (set from the first chunk)."""
        for (side, i), raw in zip(keys, raws, strict=True):
            if first_chunk:
                self._shift[side][i] = (raw.to(torch.float64).sum(0) / r).to(self.dtype)
            out = blocks[side][:r, i]
            if raw.dtype in _FLOATS:
                torch.sub(raw, self._shift[side][i], out=out)
            else:
                out.copy_(raw).sub_(self._shift[side][i])

    def _first_pass_sums(self, blocks, r: int, lm: int) -> None:
        q = {}
        for side in ("x", "y"):
            z, s = blocks[side][:r], self._st[side]
            s["s1"] += z.sum(0)
            torch.minimum(s["lo"], z.amin(0), out=s["lo"])
            torch.maximum(s["hi"], z.amax(0), out=s["hi"])
            qs = torch.linalg.vector_norm(z, dim=2).square_()  # (r, L): ||z_t||^2
            q[side] = qs
            s["q1"] += qs.sum(0)
            s["q2"] += qs.to(torch.float64).square().sum(0)
            for i in range(z.shape[1]):
                s["a"][i] += torch.mv(z[:, i].T, qs[:, i])
        if lm:
            e, zx, zy = self._extra, blocks["x"][:r], blocks["y"][:r]
            e["p"] += (q["x"][:, :lm].to(torch.float64) * q["y"][:, :lm].to(torch.float64)).sum(0)
            for i in range(lm):
                e["bxy"][i] += torch.mv(zx[:, i].T, q["y"][:, i])
                e["byx"][i] += torch.mv(zy[:, i].T, q["x"][:, i])

    def _finish_moments(self) -> None:
        """After the first pass: NaN/Inf check (one device sync), means, constant features."""
        n = self.n
        finite = {
            side: (torch.isfinite(s["s1"]).all(1) & torch.isfinite(s["q2"])).cpu().tolist()
            for side, s in self._st.items()
        }
        for side, srcs in (("x", self.xs), ("y", self.ys)):
            for i, ok in enumerate(finite[side]):
                if not ok:
                    _raise_nonfinite(srcs[i], self.rows)
        self._delta = {side: s["s1"] / n for side, s in self._st.items()}
        for side, out in (("x", self.x_moments), ("y", self.y_moments)):
            s, delta = self._st[side], self._delta[side]
            out[:] = [
                Moments(
                    n,
                    self._shift[side][i].to(torch.float64) + delta[i],
                    s["lo"][i] == s["hi"][i],
                    self.dtype,
                )
                for i in range(delta.shape[0])
            ]

    def _self_terms(self, side: str, i: int, gram: torch.Tensor) -> SelfTerms:
        """SelfTerms of layer i from the shifted Gram: Gc = G - N d d^T; with r_t = ||xc_t||^2
        = q_t - 2 d.z_t + c (c = ||d||^2): trace = Q1 - N c and
        sum_t r_t^2 = Q2 - 4 d.A + 4 d^T Gc d + 2 c Q1 + N c^2 (A = sum_t q_t z_t)."""
        n, s, d = self.n, self._st[side], self._delta[side][i]
        gc = gram.to(torch.float64)
        gc.addr_(d, d, alpha=-n)
        c = d @ d
        trace = float(s["q1"][i] - n * c)
        sum_r2 = float(
            s["q2"][i] - 4 * (d @ s["a"][i]) + 4 * (d @ gc @ d) + 2 * c * s["q1"][i] + n * c * c
        )
        frob = float(gc.square().sum())
        # undefined below 4 rows; only debiased CKA reads it (and says so then)
        hsic = _debiased_hsic(n, frob - sum_r2, -trace, -trace, sum_r2) if n >= 4 else math.nan
        col = torch.zeros(gc.shape[0], dtype=torch.float64, device=gc.device)
        return SelfTerms(n, gc.diagonal().clone(), frob, trace, col, sum_r2, hsic)

    def _cross_terms(self, i: int, j: int, cz: torch.Tensor) -> CrossTerms:
        """C = sum z_x z_y^T - N dx dy^T; for i == j (debiased) also, with Cz the shifted sum,
        sum_rr = P - 2 dy.Byx - 2 dx.Bxy + cy Q1x + cx Q1y + 4 dx^T Cz dy - 3 N cx cy,
        a_xy = Bxy - 2 Cz dy - dx Q1y + 2 N cy dx (and a_yx likewise), where P = sum qx qy,
        Bxy = sum qy zx, Byx = sum qx zy."""
        n = self.n
        dx, dy = self._delta["x"][i], self._delta["y"][j]
        c = self._cbuf
        c.copy_(cz)
        c.addr_(dx, dy, alpha=-n)
        if not (self.debiased and i == j):
            return CrossTerms(c)
        sx, sy, e = self._st["x"], self._st["y"], self._extra
        cx, cy = dx @ dx, dy @ dy
        cz_dy = c @ dy + n * cy * dx  # Cz dy = C dy + N dx (dy.dy)
        czt_dx = c.T @ dx + n * cx * dy
        sum_rr = (
            e["p"][i]
            - 2 * (dy @ e["byx"][i])
            - 2 * (dx @ e["bxy"][i])
            + cy * sx["q1"][i]
            + cx * sy["q1"][j]
            + 4 * (dx @ cz_dy)
            - 3 * n * cx * cy
        )
        a_xy = e["bxy"][i] - 2 * cz_dy - dx * sy["q1"][j] + 2 * n * cy * dx
        a_yx = e["byx"][i] - 2 * czt_dx - dy * sx["q1"][i] + 2 * n * cx * dy
        return CrossTerms(c, float(sum_rr), a_xy, a_yx)


@dataclass
class PairStatistics:
    """Everything the in-memory metrics need about one (X, Y) pair, computed by streaming."""

    n: int
    x_mom: Moments
    y_mom: Moments
    x_self: SelfTerms
    y_self: SelfTerms
    cross: CrossTerms


def pair_statistics(
    X, Y, *, device=None, chunk_size: int = DEFAULT_CHUNK_SIZE, same_dim: bool = False
) -> PairStatistics:
    """Moments, self terms and cross terms of one pair of row-aligned matrices (one pass)."""
    sx, sy = as_source(X, "X"), as_source(Y, "Y")
    check_pair(sx, sy, same_dim=same_dim)
    dev = resolve_device(device, sx, sy)
    stream = LayerStream([sx], [sy], device=dev, chunk_size=chunk_size, memory_budget=1 << 62)
    ((_, _, ct),) = list(stream.pairs())
    ct = CrossTerms(ct.cross.clone(), ct.sum_rr, ct.a_xy, ct.a_yx)
    return PairStatistics(
        sx.n_rows, stream.x_moments[0], stream.y_moments[0], stream.x_self[0], stream.y_self[0], ct
    )


def check_pair(sx: Source, sy: Source, *, same_dim: bool = False) -> None:
    from ..errors import PairMismatchError

    if sx.n_rows != sy.n_rows:
        raise PairMismatchError(
            f"{sx.name} has {sx.n_rows} rows but {sy.name} has {sy.n_rows}: "
            "the two representations must describe the same tokens, row by row"
        )
    if same_dim and sx.dim != sy.dim:
        raise PairMismatchError(
            f"{sx.name} has {sx.dim} features but {sy.name} has {sy.dim}: this "
            "measure compares feature j with feature j and needs equal widths"
        )
