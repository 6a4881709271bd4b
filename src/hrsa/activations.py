"""Activation extraction: every hidden state of one model on one probe dataset, token by token.

:func:`extract` tokenizes the probe texts, keeps a seeded subsample of whole sequences, runs the
model in length-sorted batches and streams each batch's hidden states into an activation store
(:class:`~hrsa.store.StoreWriter`), so peak memory depends on the batch, not on N or L.

Per batch, on the model's device (:class:`_Staging`): one max |x| per hidden state (the range
check: NaN/Inf stop the extraction, values beyond fp16's range promote the layer to fp32),
then the tokens under the mask are gathered and converted to the storage dtype there, so only
storage-dtype bytes reach the host. On CUDA the copies go asynchronously, on a copy stream, into
a few reused pinned host buffers, and a batch is handed to the writer only after the next
batch's forward has been queued, so the copy overlaps that forward. The writer hashes and writes
the layers on a small pool of threads. The only host sync per batch is the read of the L+1 range
values (a batch whose padded positions make them inconclusive is checked again on its kept rows).

The store format itself (layout, manifest, checksums, reader, alignment check) lives in
:mod:`hrsa.store`; its public names are re-exported here, so ``from hrsa.activations import
ActivationStore`` keeps working. Importing this module does not import torch or transformers
(the workflow imports :func:`extraction_settings` while Snakemake parses it).
"""

from __future__ import annotations

import logging
import os
import queue
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import schema_default
from .errors import DataError, StoreError
from .store import (
    FP16_MAX,
    INDEX_FILES,
    ActivationStore,
    StoreWriter,
    _sha256,
    block_maxabs,
    check_aligned,
    hidden_file,
    write_pair_check,
    write_store,
)

log = logging.getLogger("hrsa.activations")

# Keys of config["activations"] that extraction_settings() leaves out of extract()'s keywords:
# attention is set per stage (the plan: activations.attention for backbones, bidirectional for
# embedding models), gpus sizes the job. It sits here, next to its one user, rather than beside
# hrsa.config.HRSA_OTHER_KEYS; tests/test_config_defaults.py keeps it in step with the schema.
ACTIVATION_OTHER_KEYS = ("attention", "gpus")


def _default(key: str):
    """The schema's default of ``activations.<key>`` (the schema owns every default)."""
    return schema_default(f"activations.{key}")


__all__ = [
    "ACTIVATION_OTHER_KEYS",
    "FP16_MAX",
    "INDEX_FILES",
    "ActivationStore",
    "StoreWriter",
    "check_aligned",
    "extract",
    "extraction_settings",
    "hidden_file",
    "length_sorted_batches",
    "read_texts",
    "select_sequences",
    "write_pair_check",
    "write_store",
]


def read_texts(path: str | os.PathLike) -> list[dict]:
    """Read a probe dataset JSONL (records with ``id``, ``text`` and optional ``label``)."""
    from .data.probe import iter_jsonl

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: probe dataset file not found")
    records, lines = [], {}
    for lineno, rec in iter_jsonl(path):  # undecodable bytes, bad JSON: errors naming the line
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str) or "id" not in rec:
            raise DataError(f"{path}:{lineno}: each record needs a string 'text' and an 'id'")
        if rec["id"] in lines:
            raise DataError(
                f"{path}:{lineno}: id {rec['id']!r} repeats the id of line {lines[rec['id']]}; "
                "ids must be unique"
            )
        lines[rec["id"]] = lineno
        if rec["text"].strip():
            records.append(rec)
    if not records:
        raise DataError(f"{path}: the probe dataset is empty (no non-empty 'text' records)")
    return records


def select_sequences(
    lengths: Sequence[int], *, seed: int, max_sequences: int | None, max_tokens: int | None
) -> list[int]:
    """Seeded subsample of sequence indices under caps on sequences and on tokens.

    Sequences are visited in an order that depends only on ``seed`` and the number of records;
    whole sequences are kept (so sentence-level pooling and bootstrap over sequences stay valid)
    until either cap is reached. Both models of a pair tokenize identically (checked), so they
    keep the same rows.
    """
    order = np.random.default_rng(seed).permutation(len(lengths))
    kept, tokens = [], 0
    for i in order:
        if max_sequences is not None and len(kept) >= max_sequences:
            break
        if max_tokens is not None and tokens + lengths[i] > max_tokens:
            if kept:
                break
        kept.append(int(i))
        tokens += lengths[i]
    return kept


def extraction_settings(activations: dict, dataset: str, keep_all: Sequence[str] = ()) -> dict:
    """Keyword arguments of :func:`extract` for ``dataset`` from ``config["activations"]``.

    The stores of the datasets in ``keep_all`` keep every sequence: ``max_sequences`` and
    ``max_tokens`` are dropped for them. The workflow passes the labelled datasets, whose stores
    feed the cross-model probe, so the probe sees the whole labelled dataset (the paper's AG News
    probe uses all 7,600 test rows) whatever the caps.
    """
    settings = {k: v for k, v in activations.items() if k not in ACTIVATION_OTHER_KEYS}
    if dataset in keep_all:
        settings["max_sequences"] = None
        settings["max_tokens"] = None
    return settings


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices sorted by length (longest first, ties by index), cut into batches."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def extract_stage(*, model: str, stage: str, revision: str | None = None, **kwargs) -> Path:
    """:func:`extract` for one stage of a model: at stage ``emb`` ``model`` is an embedding
    model (trained or published) whose transformer may sit in a sub-directory
    (``modules.json``); the pooling and prompts it declares play no role in token-level
    extraction, so they are only logged."""
    if stage == "emb":
        from .models import resolve_embedding_model

        resolved, resolved_revision, fmt = resolve_embedding_model(model, revision)
        log.info(
            "embedding model %s (revision %s) declares %s; extraction is token-level: pooling "
            "and prompts are not used",
            model,
            revision,
            fmt.describe(),
        )
        model, revision = resolved, resolved_revision
    return extract(model=model, revision=revision, stage=stage, **kwargs)


_ALIGN = 64  # bytes: each hidden state's block starts at a SIMD- and dtype-aligned offset


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def _host_maxabs(t) -> float:
    """max |x| of a host tensor, NaN-propagating (numpy's reductions: no temporary, SIMD)."""
    import torch

    if t.dtype in (torch.float32, torch.float64):
        return block_maxabs(t.numpy())
    lo, hi = torch.aminmax(t)
    return float(torch.maximum(hi.float(), -lo.float()))


class _Staged:
    """One batch on its way to the host: a pooled byte buffer holding each hidden state's rows
    in its storage dtype, and the event after which the buffer is complete (CUDA)."""

    __slots__ = ("buf", "layout", "n", "dtypes", "event", "index")

    def __init__(self, buf, layout, n, dtypes, event, index):
        self.buf, self.layout, self.n, self.dtypes = buf, layout, n, dtypes
        self.event, self.index = event, index


class _Staging:
    """Range check, gather and conversion of each batch's hidden states on the model's device.

    Per batch: one max |x| per hidden state (including padded positions first; only when that
    is inconclusive, on the kept rows alone), read by the host in one transfer; the writer
    turns them into the dtype of each layer's block (:meth:`StoreWriter.dtypes_for`: NaN/Inf
    raise, values beyond fp16 promote). Then each hidden state's kept rows are gathered and
    converted on the device, straight into a host buffer of a small pool (``depth`` buffers,
    reused; pinned on CUDA and filled by asynchronous copies on a separate stream), and handed
    to the writer, whose threads hash and write the layers and return the buffer when done. On
    CUDA the hand-over of a batch waits until the next batch is staged, so its copy overlaps
    that batch's forward pass. Host memory: ``depth`` batches of kept hidden states in storage
    dtype, whatever N.
    """

    def __init__(self, device, writer: StoreWriter, dim: int, depth: int = 3):
        import torch

        self.torch, self.device, self.writer, self.dim = torch, device, writer, dim
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device=device) if self.cuda else None
        self._free: queue.Queue = queue.Queue()
        for _ in range(depth):
            self._free.put(None)  # a slot whose buffer is allocated on first use
        self._pending: deque[_Staged] = deque()
        self._lag = 1 if self.cuda else 0
        self._stats = None  # pinned host copy of the range values (CUDA)

    def _maxabs(self, hidden_states, keep) -> np.ndarray:
        torch = self.torch
        if self.device.type == "cpu":
            values = np.array([_host_maxabs(h) for h in hidden_states], dtype=np.float64)
        else:
            per_layer = []
            for h in hidden_states:
                lo, hi = torch.aminmax(h)
                per_layer.append(torch.maximum(hi.float(), -lo.float()))
            stats = torch.stack(per_layer)
            if self.cuda:
                # the one sync per batch; a blocking event sleeps instead of spinning a core
                # that the writer threads can use while the forward pass finishes
                if self._stats is None or self._stats.numel() != stats.numel():
                    self._stats = torch.empty(stats.shape, dtype=stats.dtype, pin_memory=True)
                self._stats.copy_(stats, non_blocking=True)
                ready = torch.cuda.Event(blocking=True)
                ready.record(torch.cuda.current_stream(self.device))
                ready.synchronize()
                values = self._stats.numpy().astype(np.float64)  # a copy: the buffer is reused
            else:
                values = stats.cpu().numpy().astype(np.float64)
        if keep is not None:
            # padded positions are included above: a value they hold may be out of range (or
            # NaN) while the kept rows are not, so an inconclusive layer is checked exactly
            for i in np.flatnonzero(~(values <= FP16_MAX)):
                rows = hidden_states[i].reshape(-1, self.dim).index_select(0, keep)
                if self.device.type == "cpu":
                    values[i] = _host_maxabs(rows)
                else:
                    lo, hi = torch.aminmax(rows)
                    values[i] = float(torch.maximum(hi.float(), -lo.float()))
        return values

    def _take(self, nbytes: int):
        buf = self._free.get()  # returned by the writer threads, also after a failed write
        if buf is None or buf.numel() < nbytes:
            buf = self.torch.empty(nbytes, dtype=self.torch.uint8, pin_memory=self.cuda)
        return buf

    def stage(self, hidden_states, keep, n: int, index) -> None:
        """Queue one batch: ``keep`` holds the flat (batch x position) indices of the rows to
        keep, on the device (None: every position); ``index`` is the writer's row index
        arrays for these rows."""
        torch = self.torch
        dtypes = self.writer.dtypes_for(self._maxabs(hidden_states, keep))
        layout, offset = [], 0
        for dt in dtypes:
            layout.append(offset)
            offset += _aligned(n * self.dim * dt.itemsize)
        buf = self._take(offset)
        compute = torch.cuda.current_stream(self.device) if self.cuda else None
        for h, dt, start in zip(hidden_states, dtypes, layout, strict=True):
            tdt = torch.float16 if dt == np.float16 else torch.float32
            rows = h.reshape(-1, self.dim)
            if keep is not None:
                rows = rows.index_select(0, keep)
            dst = buf[start : start + n * self.dim * dt.itemsize].view(tdt).view(n, self.dim)
            if self.cuda:
                converted = rows.to(tdt)
                self.stream.wait_stream(compute)
                with torch.cuda.stream(self.stream):
                    dst.copy_(converted, non_blocking=True)
                # the caching allocator may not hand this memory to the compute stream again
                # before the copy stream has read it
                converted.record_stream(self.stream)
            elif self.device.type == "cpu":
                dst.copy_(rows)  # gather + conversion, vectorised and on torch's threads
            else:
                dst.copy_(rows.to(tdt))
        event = None
        if self.cuda:
            event = torch.cuda.Event(blocking=True)
            event.record(self.stream)
        self._pending.append(_Staged(buf, layout, n, dtypes, event, index))
        while len(self._pending) > self._lag:
            self._hand_over(self._pending.popleft())

    def flush(self) -> None:
        while self._pending:
            self._hand_over(self._pending.popleft())

    def _hand_over(self, staged: _Staged) -> None:
        if staged.event is not None:
            staged.event.synchronize()  # this batch's copies only; the device keeps computing
        raw = staged.buf.numpy()
        blocks = [
            raw[start : start + staged.n * self.dim * dt.itemsize]
            .view(dt)
            .reshape(staged.n, self.dim)
            for dt, start in zip(staged.dtypes, staged.layout, strict=True)
        ]
        buf, free = staged.buf, self._free
        self.writer.append(
            blocks, *staged.index, dtypes=staged.dtypes, on_written=lambda: free.put(buf)
        )


def extract(
    *,
    model: str,
    texts: str | os.PathLike,
    store: str | os.PathLike,
    model_key: str = "",
    dataset_key: str = "",
    revision: str | None = None,
    dtype: str = _default("dtype"),
    attention: str = _default("attention"),
    device: str = schema_default("device"),
    max_sequences: int | None = _default("max_sequences"),
    max_tokens: int | None = _default("max_tokens"),
    max_length: int | None = _default("max_length"),
    batch_size: int = _default("batch_size"),
    storage_dtype: str = _default("storage_dtype"),
    seed: int = _default("seed"),
    stage: str = "backbone",
) -> Path:
    """Run ``model`` over the probe texts and write every hidden state to an activation store."""
    import torch
    from tqdm.auto import tqdm

    from .models import load_backbone, resolved_revision, tokenizer_fingerprint

    records = read_texts(texts)
    net, tokenizer = load_backbone(
        model, revision=revision, dtype=dtype, attention=attention, device=device
    )
    dev = next(net.parameters()).device
    # max_length None: no truncation, as the authors' code (max_length=131072) effectively ran
    encoded = tokenizer(
        [r["text"] for r in records],
        add_special_tokens=False,
        truncation=max_length is not None,
        max_length=max_length,
    )["input_ids"]
    lengths = [len(ids) for ids in encoded]
    keep = [
        i
        for i in select_sequences(
            lengths, seed=seed, max_sequences=max_sequences, max_tokens=max_tokens
        )
        if lengths[i] > 0
    ]
    if not keep:
        raise DataError(f"{texts}: no sequence has any token after tokenization")
    kept_lengths = [lengths[i] for i in keep]
    batches = length_sorted_batches(kept_lengths, batch_size)
    order = [j for batch in batches for j in batch]  # processing order = row order in the store
    sequences = [
        {
            "id": str(records[keep[j]]["id"]),
            "label": records[keep[j]].get("label"),
            "n_tokens": kept_lengths[j],
        }
        for j in order
    ]
    slot = {j: s for s, j in enumerate(order)}
    n_rows = sum(kept_lengths)
    n_hidden = net.config.num_hidden_layers + 1
    dim = net.config.hidden_size
    writer = StoreWriter(store, n_rows, dim, n_hidden, storage_dtype)
    staging = _Staging(dev, writer, dim)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    try:
        with (
            torch.inference_mode(),
            tqdm(total=n_rows, unit="tok", desc=f"{model_key}/{dataset_key}", mininterval=5) as bar,
        ):
            for batch in batches:
                seqs = [encoded[keep[j]] for j in batch]
                width = max(len(s) for s in seqs)
                ids = torch.full((len(seqs), width), pad, dtype=torch.long)
                mask = torch.zeros((len(seqs), width), dtype=torch.long)
                for r, s in enumerate(seqs):  # right padding
                    ids[r, : len(s)] = torch.tensor(s)
                    mask[r, : len(s)] = 1
                out = net(
                    input_ids=ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True
                )
                if len(out.hidden_states) != n_hidden:
                    raise StoreError(
                        f"model returned {len(out.hidden_states)} hidden states, expected {n_hidden}"
                    )
                kept = mask.bool()
                flat_ids = ids[kept].numpy()
                seq_idx = np.repeat([slot[j] for j in batch], [len(s) for s in seqs])
                pos = np.concatenate([np.arange(len(s)) for s in seqs])
                rows = None if bool(kept.all()) else kept.view(-1).nonzero().squeeze(1).to(dev)
                staging.stage(out.hidden_states, rows, len(flat_ids), (flat_ids, seq_idx, pos))
                del out  # the device may reuse its memory once the conversions are queued
                bar.update(len(flat_ids))
            staging.flush()
        meta = {
            "model": model_key,
            "source": str(model),
            "revision": revision,
            "resolved_revision": resolved_revision(str(model), revision),
            "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
            "dataset": dataset_key,
            "stage": stage,
            "attention": attention,
            "model_dtype": str(next(net.parameters()).dtype),
            "device": str(dev),
            "max_sequences": max_sequences,
            "max_tokens": max_tokens,
            "max_length": max_length,
            "seed": seed,
            "texts": str(texts),
            "texts_sha256": _sha256(Path(texts)),
        }
        return writer.commit(sequences, meta)
    except BaseException:
        writer.abort()
        raise
