"""The HRSA engine as it was before issue 13 (commit cfaee0e), frozen as the baseline of
``benchmarks/hrsa_engine.py``: separate passes for the moments, the self terms and each block
of cross products (fp64 accumulators, one fp32 product buffer), layer files read once per pass.

Only the benchmark imports it; the reductions are inlined (fp64 SVD for Procrustes) so the
baseline does not change when the library's reductions do. Every file read goes through
``_preadv``, which the benchmark wraps to count bytes.
"""

# ruff: noqa
from __future__ import annotations

import math
import mmap
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hrsa.errors import DataError

DEFAULT_CHUNK_SIZE = 4096
DEFAULT_ACCUMULATOR_BYTES = 256 * 2**20
_preadv = os.preadv


class _BufferPool:
    """Read buffers handed back after a pass and reused by the next one, so streaming many
    passes over many layers does not churn (and fragment) the heap. Idle buffers are at most
    as many as were in use at once (one per layer of an accumulator block), and at most
    ``keep_bytes`` in total."""

    def __init__(self, keep_bytes: int = 256 * 2**20):
        self.keep_bytes = keep_bytes
        self.idle: list[np.ndarray] = []

    def take(self, shape: tuple[int, int], dtype) -> np.ndarray:
        for k, buf in enumerate(self.idle):
            if buf.shape == shape and buf.dtype == dtype:
                return self.idle.pop(k)
        return np.empty(shape, dtype=dtype)

    def give(self, buf: np.ndarray) -> None:
        self.idle.append(buf)
        while sum(b.nbytes for b in self.idle) > self.keep_bytes:
            self.idle.pop(0)


_READ_BUFFERS = _BufferPool()


class Source:
    """An (N, D) matrix read in row chunks: numpy array, memory map, or torch tensor.

    Memory maps opened by ``np.load(..., mmap_mode="r")`` (activation stores) are read with
    ``os.pread`` into one reusable buffer, so pages are never mapped into this process and peak
    memory stays at one chunk however large the file is. ``describe_row`` turns a row number into
    words for error messages (e.g. the sequence id and token position of a store row).
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
        self.describe_row = describe_row or (lambda r: f"row {r}")
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

    def chunks(
        self, chunk_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first_row, rows)`` in the stored dtype. Rows may share memory with the input
        or with a buffer reused by the next chunk: copy what you keep, never modify in place."""
        stop = self.n_rows if stop is None else stop
        if chunk_size < 1:
            raise ValueError("hrsa.chunk_size", f"must be >= 1, got {chunk_size}")
        if self._file is not None:
            yield from self._pread_chunks(chunk_size, start, stop)
            return
        for a in range(start, stop, chunk_size):
            b = min(a + chunk_size, stop)
            block = self.array[a:b]
            if isinstance(block, np.ndarray):
                block = np.ascontiguousarray(block)
                if not block.flags.writeable:  # torch wants writable memory; never written
                    block = block.copy()
                block = torch.from_numpy(block)
            yield a, block

    def _pread_chunks(self, chunk_size, start, stop):
        path, offset = self._file
        dtype = self.array.dtype
        row_bytes = self.dim * dtype.itemsize
        buf = _READ_BUFFERS.take((min(chunk_size, max(stop - start, 1)), self.dim), dtype)
        fd = os.open(path, os.O_RDONLY)
        try:
            for a in range(start, stop, chunk_size):
                b = min(a + chunk_size, stop)
                view = memoryview(buf[: b - a]).cast("B")
                done, want, pos = 0, (b - a) * row_bytes, offset + a * row_bytes
                while done < want:
                    got = _preadv(fd, [view[done:]], pos + done)
                    if got <= 0:
                        raise DataError(f"{self.name}: {path} ended early (truncated file?)")
                    done += got
                yield a, torch.from_numpy(buf[: b - a])
        finally:
            os.close(fd)
            _READ_BUFFERS.give(buf)

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
    """One pass: fp64 column sums, column min/max; NaN/Inf raise a DataError naming the row.

    Buffers are allocated once per pass (no per-chunk allocations, so memory stays flat)."""
    if src.n_rows < 2:
        raise DataError(f"{src.name}: needs at least 2 rows (tokens), got {src.n_rows}")
    d, rows = src.dim, min(chunk_size, src.n_rows)
    total = torch.zeros(d, dtype=torch.float64, device=device)
    lo = torch.full((d,), math.inf, dtype=src.compute_dtype, device=device)
    hi = torch.full((d,), -math.inf, dtype=src.compute_dtype, device=device)
    buf = torch.empty(rows, d, dtype=src.compute_dtype, device=device)
    buf64 = (
        buf if src.compute_dtype == torch.float64 else torch.empty_like(buf, dtype=torch.float64)
    )
    for _, raw in src.chunks(chunk_size):
        x = buf[: raw.shape[0]].copy_(raw)
        x64 = x if buf64 is buf else buf64[: raw.shape[0]].copy_(x)
        total += x64.sum(0)
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


def _load_centred(raw: torch.Tensor, out: torch.Tensor, mom: Moments) -> torch.Tensor:
    out.copy_(raw)
    return mom.centre_(out)


def _row_sq_norms(xc: torch.Tensor) -> torch.Tensor:
    """||xc_t||^2 per row, in the compute dtype (no N x D temporary)."""
    return torch.linalg.vector_norm(xc, dim=1).square_()


@dataclass
class SelfTerms:
    """Statistics of ``Xc`` alone, reduced from its Gram matrix ``G = Xc^T Xc``.

    ``diag`` = per-feature sums of squares, ``frob_sq`` = ||G||_F^2, ``trace`` = ||Xc||_F^2,
    ``col_sum`` = Xc^T 1 (zero up to rounding), and ``hsic_u`` = the debiased self-HSIC
    (times n(n-3)).
    """

    n: int
    diag: torch.Tensor
    frob_sq: float
    trace: float
    col_sum: torch.Tensor
    sum_row_sq_sq: float  # sum_t r_t^2, r_t = ||xc_t||^2
    hsic_u: float


def compute_self_terms(
    src: Source, mom: Moments, device: torch.device, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> SelfTerms:
    d = src.dim
    gram = torch.zeros(d, d, dtype=torch.float64, device=device)
    col_sum = torch.zeros(d, dtype=torch.float64, device=device)
    a_self = torch.zeros(d, dtype=torch.float64, device=device)
    trace = sum_r2 = 0.0
    buf = torch.empty(min(chunk_size, src.n_rows), d, dtype=mom.compute_dtype, device=device)
    prod = torch.empty(d, d, dtype=mom.compute_dtype, device=device)
    for _, raw in src.chunks(chunk_size):
        xc = _load_centred(raw, buf[: raw.shape[0]], mom)
        gram += torch.matmul(xc.T, xc, out=prod)
        col_sum += xc.sum(0)
        r32 = _row_sq_norms(xc)
        r = r32.to(torch.float64)
        trace += float(r.sum())
        sum_r2 += float(r.square().sum())
        a_self += xc.T @ r32
    frob_sq = float(gram.square().sum())
    sgs = float(col_sum @ gram @ col_sum)
    one_k_one = float(col_sum @ col_sum) - trace
    one_kk_one = sgs - 2.0 * float(col_sum @ a_self) + sum_r2
    hsic = _debiased_hsic(src.n_rows, frob_sq - sum_r2, one_k_one, one_k_one, one_kk_one)
    return SelfTerms(src.n_rows, gram.diagonal().clone(), frob_sq, trace, col_sum, sum_r2, hsic)


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


def block_size(n_layers: int, dim_x: int, dim_y: int, accumulator_bytes: int) -> int:
    """How many layers per side share one accumulator block (fp64 sum + fp32 product)."""
    per_pair = 12 * dim_x * dim_y
    a = max(1, min(n_layers, math.isqrt(max(accumulator_bytes // per_pair, 1))))
    n_blocks = -(-n_layers // a)
    return -(-n_layers // n_blocks)


def cross_products(
    xs: Sequence[Source],
    x_mom: Sequence[Moments],
    ys: Sequence[Source],
    y_mom: Sequence[Moments],
    *,
    device: torch.device,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    diagonal_only: bool = False,
    debiased: bool = True,
    accumulator_bytes: int = DEFAULT_ACCUMULATOR_BYTES,
) -> Iterator[tuple[int, int, CrossTerms]]:
    """Yield ``(i, j, CrossTerms)`` for every layer pair (or only i == j).

    Layers are grouped in blocks whose fp64 accumulator fits ``accumulator_bytes``; each token
    chunk of a block pair is read and centred once and multiplied in a single GEMM
    ``[Xc_i ...]^T [Yc_j ...]``, so every layer pair costs exactly one cross product. The yielded
    tensors are views into buffers reused by later blocks: use them before asking for the next
    item.
    """
    n = xs[0].n_rows
    for s in (*xs, *ys):
        if s.n_rows != n:
            raise DataError(f"{s.name}: {s.n_rows} rows, expected {n} (row-aligned inputs)")
    dx, dy = xs[0].dim, ys[0].dim
    dtype = (
        torch.float64
        if any(m.compute_dtype == torch.float64 for m in (*x_mom, *y_mom))
        else torch.float32
    )
    if diagonal_only:
        blocks = [([i], [i]) for i in range(min(len(xs), len(ys)))]
    else:
        a = block_size(max(len(xs), len(ys)), dx, dy, accumulator_bytes)
        rows_x = [list(range(i, min(i + a, len(xs)))) for i in range(0, len(xs), a)]
        rows_y = [list(range(j, min(j + a, len(ys)))) for j in range(0, len(ys), a)]
        blocks = [(bi, bj) for bi in rows_x for bj in rows_y]
    chunk = min(chunk_size, n)
    a_max = max(len(bi) for bi, _ in blocks)
    b_max = max(len(bj) for _, bj in blocks)
    # one set of buffers for every block (flat storage, so each block's views are contiguous)
    acc_store = torch.empty(a_max * dx * b_max * dy, dtype=torch.float64, device=device)
    prod_store = torch.empty(a_max * dx * b_max * dy, dtype=dtype, device=device)
    x_store = torch.empty(chunk * a_max * dx, dtype=dtype, device=device)
    y_store = torch.empty(chunk * b_max * dy, dtype=dtype, device=device)
    for bi, bj in blocks:
        shape = (len(bi) * dx, len(bj) * dy)
        acc = acc_store[: shape[0] * shape[1]].view(shape).zero_()
        prod = prod_store[: shape[0] * shape[1]].view(shape)
        bufx = x_store[: chunk * len(bi) * dx].view(chunk, len(bi), dx)
        bufy = y_store[: chunk * len(bj) * dy].view(chunk, len(bj), dy)
        common = [(p, bj.index(i), i) for p, i in enumerate(bi) if i in bj] if debiased else []
        extra = {
            i: [
                0.0,
                torch.zeros(dx, dtype=torch.float64, device=device),
                torch.zeros(dy, dtype=torch.float64, device=device),
            ]
            for _, _, i in common
        }
        gens = [xs[i].chunks(chunk) for i in bi] + [ys[j].chunks(chunk) for j in bj]
        for parts in zip(*gens, strict=True):
            rows = parts[0][1].shape[0]
            for p, i in enumerate(bi):
                _load_centred(parts[p][1], bufx[:rows, p], x_mom[i])
            for q, j in enumerate(bj):
                _load_centred(parts[len(bi) + q][1], bufy[:rows, q], y_mom[j])
            xb = bufx[:rows].reshape(rows, -1)
            yb = bufy[:rows].reshape(rows, -1)
            acc += torch.matmul(xb.T, yb, out=prod)
            for p, q, i in common:
                xc, yc = bufx[:rows, p], bufy[:rows, q]
                rx, ry = _row_sq_norms(xc), _row_sq_norms(yc)
                e = extra[i]
                e[0] += float(rx.to(torch.float64) @ ry.to(torch.float64))
                e[1] += xc.T @ ry
                e[2] += yc.T @ rx
        for p, i in enumerate(bi):
            for q, j in enumerate(bj):
                if diagonal_only and i != j:
                    continue
                c = acc[p * dx : (p + 1) * dx, q * dy : (q + 1) * dy]
                if i == j and i in extra:
                    e = extra[i]
                    yield i, j, CrossTerms(c, e[0], e[1], e[2])
                else:
                    yield i, j, CrossTerms(c)


def _h_inv(cross: torch.Tensor) -> float:
    u, _, vh = torch.linalg.svd(cross.to(torch.float64))
    p = (u @ vh).square()
    p = p / p.sum(1, keepdim=True)
    return float(1.0 - (-torch.xlogy(p, p).sum(1)).mean() / math.log(p.shape[0]))


def layerwise_similarity(
    base_layers: Sequence,
    reasoning_layers: Sequence,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device="cpu",
    accumulator_bytes: int = DEFAULT_ACCUMULATOR_BYTES,
    diagonal: bool = True,
) -> dict:
    """The previous engine's layer-by-layer matrices (no error handling: NaN where a value is
    undefined)."""
    dev = torch.device(device)
    xs = [x if isinstance(x, Source) else Source(x, f"base {i}") for i, x in enumerate(base_layers)]
    ys = [
        y if isinstance(y, Source) else Source(y, f"reason {j}")
        for j, y in enumerate(reasoning_layers)
    ]
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        mx = [compute_moments(s, dev, chunk_size) for s in xs]
        my = [compute_moments(s, dev, chunk_size) for s in ys]
        sx = [compute_self_terms(s, m, dev, chunk_size) for s, m in zip(xs, mx)]
        sy = [compute_self_terms(s, m, dev, chunk_size) for s, m in zip(ys, my)]
        la, lb, n = len(xs), len(ys), xs[0].n_rows
        nan = float("nan")
        out = {
            "linear_cka": np.full((la, lb), nan),
            "dimension_wise_correlation": np.full((la, lb), nan),
            "debiased_cka": np.full(min(la, lb) if diagonal else 0, nan),
            "procrustes_h_inv": np.full(min(la, lb) if diagonal else 0, nan),
        }
        for i, j, ct in cross_products(
            xs,
            mx,
            ys,
            my,
            device=dev,
            chunk_size=chunk_size,
            debiased=diagonal,
            accumulator_bytes=accumulator_bytes,
        ):
            c = ct.cross
            out["linear_cka"][i, j] = float(c.square().sum()) / math.sqrt(
                sx[i].frob_sq * sy[j].frob_sq
            )
            keep = ~(mx[i].constant | my[j].constant | (sx[i].diag <= 0) | (sy[j].diag <= 0))
            rho = c.diagonal()[keep] / torch.sqrt(sx[i].diag[keep] * sy[j].diag[keep])
            out["dimension_wise_correlation"][i, j] = float(rho.mean())
            if diagonal and i == j:
                out["debiased_cka"][i] = ct.hsic_u(n, sx[i], sy[j]) / math.sqrt(
                    sx[i].hsic_u * sy[j].hsic_u
                )
                out["procrustes_h_inv"][i] = _h_inv(c)
    finally:
        torch.set_float32_matmul_precision(old)
    return out
