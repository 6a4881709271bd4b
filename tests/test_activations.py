"""Activation extraction and the activation store contract."""

import json
import os
from functools import partial

import numpy as np
import pytest
import torch

from hrsa.activations import (
    ActivationStore,
    StoreWriter,
    check_aligned,
    extract,
    length_sorted_batches,
    select_sequences,
    write_store,
)
from hrsa.data import synthetic
from hrsa.data.probe import write_jsonl
from hrsa.errors import DataError, PairMismatchError, StoreError
from hrsa.models import load_backbone


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "cot.jsonl"
    write_jsonl(synthetic.arithmetic_traces(40, 0), path)
    return path


@pytest.fixture(scope="module")
def stores(tiny_models, texts, tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    out = {}
    for name, path in tiny_models.items():
        out[name] = extract(
            model=str(path),
            texts=texts,
            store=root / name,
            model_key=name,
            dataset_key="cot",
            device="cpu",
            batch_size=4,
            max_tokens=1500,
            seed=3,
        )
    return {k: ActivationStore(v) for k, v in out.items()}


def test_store_holds_every_hidden_state_of_every_kept_token(stores, tiny_models, texts):
    store = stores["base"]
    model, tok = load_backbone(tiny_models["base"], device="cpu")
    assert store.n_hidden_states == model.config.num_hidden_layers + 1
    assert store.dim == model.config.hidden_size
    seqs = store.sequences
    assert sum(s["n_tokens"] for s in seqs) == store.n_rows <= 1500
    records = {json.loads(line)["id"]: json.loads(line) for line in open(texts)}
    sidx = store.sequence_index
    # Each sequence alone (no padding) gives the same hidden states as the batched, padded run.
    for j in (0, len(seqs) - 1):
        ids = tok(records[seqs[j]["id"]]["text"], add_special_tokens=False)["input_ids"]
        rows = np.flatnonzero(sidx == j)
        assert np.array_equal(store.token_ids[rows], ids)
        assert np.array_equal(store.position[rows], np.arange(len(ids)))
        with torch.no_grad():
            hs = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        for layer in (0, store.n_hidden_states - 1):
            np.testing.assert_allclose(
                store.layer(layer)[rows], hs[layer][0].numpy(), atol=2e-2, rtol=2e-3
            )


def test_manifest_contract(stores):
    m = stores["base"].manifest
    for key in (
        "model",
        "source",
        "tokenizer_sha256",
        "dataset",
        "attention",
        "n_rows",
        "dim",
        "n_hidden_states",
        "dtype",
        "files",
        "hrsa_version",
    ):
        assert key in m, key
    assert m["attention"] == "bidirectional" and m["dtype"] == "float16"
    assert all("sha256" in f for f in m["files"].values())
    stores["base"].verify()


def test_both_models_of_a_pair_keep_the_same_rows(stores):
    check_aligned(stores["base"], stores["reason"])
    assert not np.array_equal(stores["base"].layer(2)[:50], stores["reason"].layer(2)[:50])


def test_subsample_depends_only_on_seed_and_caps():
    lengths = [10, 20, 30, 40, 50, 60]
    assert select_sequences(lengths, seed=1, max_sequences=3, max_tokens=None) == select_sequences(
        lengths, seed=1, max_sequences=3, max_tokens=None
    )
    kept = select_sequences(lengths, seed=2, max_sequences=None, max_tokens=100)
    assert sum(lengths[i] for i in kept) <= 100 and len(set(kept)) == len(kept)
    assert len(select_sequences(lengths, seed=2, max_sequences=2, max_tokens=None)) == 2


def test_batches_are_length_sorted():
    batches = length_sorted_batches([3, 9, 1, 9, 5], 2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_mismatched_tokenizers_name_sequence_and_position(
    stores, other_tokenizer_model, texts, tmp_path
):
    other = ActivationStore(
        extract(
            model=str(other_tokenizer_model),
            texts=texts,
            store=tmp_path / "o",
            model_key="other",
            dataset_key="cot",
            device="cpu",
            batch_size=4,
            max_tokens=None,
            max_sequences=5,
            seed=3,
        )
    )
    few = ActivationStore(
        extract(
            model=str(stores["base"].manifest["source"]),
            texts=texts,
            store=tmp_path / "b",
            model_key="base",
            dataset_key="cot",
            device="cpu",
            batch_size=4,
            max_tokens=None,
            max_sequences=5,
            seed=3,
        )
    )
    with pytest.raises(
        PairMismatchError,
        match=r"dataset 'cot': token ids differ first in sequence 'cot-\d+' at token position \d+",
    ):
        check_aligned(few, other)


def test_fp16_overflow_promotes_the_layer_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    small, big = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    big[7, 2] = 1e6
    w = StoreWriter(tmp_path / "s", 20, 4, 2, "float16")
    w.append([small, small], np.arange(10), np.zeros(10), np.arange(10))
    w.append([small, big], np.arange(10), np.ones(10), np.arange(10))
    store = ActivationStore(w.commit([{"id": "a"}, {"id": "b"}], {"dataset": "d"}))
    assert store.manifest["promoted_layers"] == [1]
    assert store.manifest["files"]["hidden_001.npy"]["promoted_from_float16_at_row"] == 10
    layer = store.layer(1)
    assert layer.dtype == np.float32 and np.isfinite(layer).all() and layer[17, 2] == 1e6
    np.testing.assert_allclose(layer[:10], small.astype(np.float16), rtol=0)
    assert store.layer(0).dtype == np.float16
    store.verify()


def test_nan_in_hidden_states_is_refused_and_leaves_nothing(tmp_path):
    x = np.ones((3, 2))
    x[1, 1] = np.nan
    with pytest.raises(StoreError, match="NaN or Inf"):
        write_store(tmp_path / "s", [x], np.arange(3), np.zeros(3), np.arange(3), [{"id": "a"}])
    assert os.listdir(tmp_path) == []


def test_corrupted_store_fails_verification(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    path = write_store(
        tmp_path / "s", [x, x], np.arange(6), np.zeros(6), np.arange(6), [{"id": "a"}]
    )
    arr = np.load(path / "hidden_001.npy", mmap_mode="r+")
    arr[3, 1] = 99
    arr.flush()
    with pytest.raises(StoreError, match="hidden_001.npy: sha256 .* does not match"):
        ActivationStore(path).verify()
    (path / "manifest.json").unlink()
    with pytest.raises(StoreError, match="no manifest.json"):
        ActivationStore(path)


def test_failed_extraction_leaves_no_store(tiny_models, tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        extract(
            model=str(tiny_models["base"]),
            texts=tmp_path / "empty.jsonl",
            store=tmp_path / "s",
            device="cpu",
        )
    assert not (tmp_path / "s").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".s.tmp")]


def test_stores_with_different_rows_are_refused(tmp_path):
    x = np.zeros((4, 2), dtype=np.float32)
    a = ActivationStore(
        write_store(
            tmp_path / "a",
            [x],
            [1, 2, 3, 4],
            [0, 0, 1, 1],
            [0, 1, 0, 1],
            [{"id": "s1"}, {"id": "s2"}],
            {"dataset": "d"},
        )
    )
    b = ActivationStore(
        write_store(
            tmp_path / "b", [x[:2]], [1, 2], [0, 0], [0, 1], [{"id": "s1"}], {"dataset": "d"}
        )
    )
    with pytest.raises(PairMismatchError, match="first sequence not in both: 's2'"):
        check_aligned(a, b)
    c = ActivationStore(
        write_store(
            tmp_path / "c",
            [x],
            [1, 2, 3, 5],
            [0, 0, 1, 1],
            [0, 1, 0, 1],
            [{"id": "s1"}, {"id": "s2"}],
            {"dataset": "d"},
        )
    )
    with pytest.raises(PairMismatchError, match="sequence 's2' at token position 1"):
        check_aligned(a, c)


def test_a_killed_writers_leftover_is_reclaimed_by_the_next_write(tmp_path):
    stale = tmp_path / ".s.tmp-abc123"
    stale.mkdir()
    (stale / "hidden_000.npy").write_bytes(b"half written")
    x = np.ones((2, 2), dtype=np.float32)
    write_store(tmp_path / "s", [x], [1, 2], [0, 0], [0, 1], [{"id": "a"}])
    assert sorted(os.listdir(tmp_path)) == ["s"]


# --- extraction throughput path: device-side range check and conversion, writer threads -------


def _batches_of(store, batch_size):
    """The padded batches extraction ran, rebuilt from a store (row order = processing order)."""
    sidx, tok = store.sequence_index, store.token_ids
    seqs = [tok[sidx == j] for j in range(len(store.sequences))]
    for start in range(0, len(seqs), batch_size):
        yield seqs[start : start + batch_size]


def test_extraction_stores_exactly_the_fp16_of_the_kept_rows(stores, tiny_models):
    """Gather and fp16 conversion on the device give, bit for bit, what converting each batch's
    kept rows on the host with numpy gives (the writer's reference path)."""
    store = stores["base"]
    model, tok = load_backbone(tiny_models["base"], device="cpu")
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    expected = [[] for _ in range(store.n_hidden_states)]
    padded_batches = 0
    for seqs in _batches_of(store, 4):
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.as_tensor(s)
            mask[r, : len(s)] = 1
        padded_batches += int(not bool(mask.all()))
        with torch.inference_mode():
            hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        for i, h in enumerate(hs):
            expected[i].append(h[mask.bool()].numpy().astype(np.float16))
    assert padded_batches > 0
    for i in range(store.n_hidden_states):
        got = store.layer(i)
        assert got.dtype == np.float16
        assert np.array_equal(got, np.concatenate(expected[i])), i


def _staged_writer(tmp_path, n_rows, dim=4, n_hidden=3, storage="float16", threads=2, lag=0):
    from hrsa.activations import _Staging

    writer = StoreWriter(tmp_path / "s", n_rows, dim, n_hidden, storage, write_threads=threads)
    staging = _Staging(torch.device("cpu"), writer, dim, depth=2)
    staging._lag = lag  # 1: hand each batch over after the next is staged, as on CUDA
    return writer, staging


def _stage(staging, hidden, mask):
    """Stage one batch of (B, W, D) hidden states under a (B, W) mask, as extract() does."""
    kept = mask.bool()
    n = int(kept.sum())
    rows = None if bool(kept.all()) else kept.view(-1).nonzero().squeeze(1)
    index = (np.zeros(n, np.int64), np.zeros(n, np.int64), np.arange(n))
    staging.stage([torch.as_tensor(h) for h in hidden], rows, n, index)
    return [np.asarray(h)[kept.numpy()] for h in hidden]


@pytest.mark.parametrize("lag", [0, 1])
def test_range_check_sees_only_kept_rows_and_promotion_keeps_fp32_precision(tmp_path, lag):
    rng = np.random.default_rng(0)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # one padded position
    batches = [[rng.normal(size=(2, 3, 4)).astype(np.float32) for _ in range(3)] for _ in range(4)]
    # padding holds junk beyond fp16 range and NaN: it is not stored, so it neither promotes
    # nor stops anything
    batches[0][1][1, 2, 0] = 1e9
    batches[0][2][1, 2, 3] = np.nan
    batches[1][1][0, 1, 2] = 65510.0  # beyond fp16's max (65504) although it rounds to it
    batches[2][1][:, :, :] += np.float32(1e-4)  # not representable in fp16
    n_rows = 5 * len(batches)
    writer, staging = _staged_writer(tmp_path, n_rows, lag=lag)
    kept = [_stage(staging, hidden, mask) for hidden in batches]
    staging.flush()
    store = ActivationStore(writer.commit([{"id": "a"}], {"dataset": "d"}))
    assert store.manifest["promoted_layers"] == [1]
    assert store.manifest["files"]["hidden_001.npy"]["promoted_from_float16_at_row"] == 5
    promoted = store.layer(1)
    assert promoted.dtype == np.float32
    np.testing.assert_array_equal(promoted[:5], kept[0][1].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(promoted[5:], np.concatenate([k[1] for k in kept[1:]]))
    for i in (0, 2):
        assert store.layer(i).dtype == np.float16
        np.testing.assert_array_equal(
            store.layer(i), np.concatenate([k[i] for k in kept]).astype(np.float16)
        )
    store.verify()
    assert staging._free.qsize() == 2  # every pooled buffer came back from the writer threads


def test_nan_in_a_kept_row_stops_extraction_and_leaves_nothing(tmp_path):
    writer, staging = _staged_writer(tmp_path, 10)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    hidden = [np.ones((2, 3, 4), np.float32) for _ in range(3)]
    _stage(staging, hidden, mask)
    hidden[2][1, 0, 1] = np.inf
    with pytest.raises(StoreError, match=r"hidden_002.npy: NaN or Inf"):
        _stage(staging, hidden, mask)
    writer.abort()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("storage", ["float16", "float32"])
def test_writer_threads_write_the_same_files_as_one(tmp_path, storage):
    rng = np.random.default_rng(1)
    blocks = [[rng.normal(size=(7, 5)) for _ in range(5)] for _ in range(4)]
    blocks[2][3][4, 1] = 1e5  # promotes hidden state 3 when stored as fp16
    manifests = {}
    for threads in (1, 2, 5):
        w = StoreWriter(tmp_path / f"t{threads}", 28, 5, 5, storage, write_threads=threads)
        written = []
        for b in blocks:
            w.append(
                b, np.arange(7), np.zeros(7), np.arange(7), on_written=partial(written.append, 1)
            )
        m = ActivationStore(w.commit([{"id": "a"}], {"dataset": "d"})).manifest
        assert len(written) == len(blocks)  # on_written: once per block
        manifests[threads] = {k: v["sha256"] for k, v in m["files"].items()}
    assert manifests[1] == manifests[2] == manifests[5]


def test_a_failed_write_fails_extraction_without_hanging_and_leaves_nothing(
    tiny_models, texts, tmp_path, monkeypatch
):
    import threading

    from hrsa import store as store_module

    real_append = store_module._LayerFile.append

    def disk_full(self, block, dtype):
        if self.path.name == "hidden_002.npy" and self.rows > 0:
            raise OSError(28, "No space left on device")
        real_append(self, block, dtype)

    monkeypatch.setattr(store_module._LayerFile, "append", disk_full)
    errors = []

    def run():
        try:
            extract(
                model=str(tiny_models["base"]),
                texts=texts,
                store=tmp_path / "s",
                device="cpu",
                batch_size=2,
                max_sequences=16,
            )
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), "extraction hung after a failed write"
    assert len(errors) == 1 and isinstance(errors[0], OSError), errors
    assert os.listdir(tmp_path) == []


def test_a_killed_writer_leaves_nothing_that_looks_like_a_store(tmp_path):
    import signal
    import subprocess
    import sys

    code = (
        "import os, signal, numpy as np; from hrsa.store import StoreWriter;"
        f"w = StoreWriter({str(tmp_path / 's')!r}, 100, 8, 3, 'float16');"
        "[w.append([np.ones((10, 8))] * 3, np.arange(10), np.zeros(10), np.arange(10))"
        " for _ in range(5)];"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "s").exists()
    (leftover,) = os.listdir(tmp_path)
    assert leftover.startswith(".s.tmp-")
    assert not (tmp_path / leftover / "manifest.json").exists()
    with pytest.raises(StoreError, match="no manifest.json"):
        ActivationStore(tmp_path / leftover)
