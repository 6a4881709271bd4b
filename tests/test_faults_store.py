"""Issue 17, items 1, 2 and 6: nothing wrong is ever trusted, nothing finished is ever lost.

* every consumer of an activation store (the HRSA engine, the cross-model probe, the pair check)
  verifies every file it depends on against the manifest's sha256 and fails naming the file and
  the way to rebuild the store; a truncated file is named at open; ``hrsa verify-store``
  reports problems with a non-zero exit, never a traceback;
* work directories are locked: a second writer fails fast naming the holder's pid and host, and
  the cleanup of a killed writer's leftovers spares a live writer's directory;
* created directories follow the umask.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hrsa import cli, locks, store
from hrsa.errors import DataError, LockError, StoreError
from hrsa.metrics import HRSASettings, compare_stores, probe_stores, streaming
from hrsa.store import ActivationStore, StoreWriter, pair_check, write_store

SMALL = dict(knn_k=[3], bootstrap=2, permutations=2, chunk_size=16, seed=1, knn_max_tokens=64)
FILES = [
    "hidden_000.npy",
    "hidden_001.npy",
    "hidden_002.npy",
    "token_ids.npy",
    "sequence_index.npy",
    "position.npy",
    "sequences.json",
]


def _layers(n_seq=16, d=8, n_layers=3, seed=0):
    rng = np.random.default_rng(seed)
    lens = rng.integers(4, 9, n_seq)
    n = int(lens.sum())
    seq = np.repeat(np.arange(n_seq), lens)
    pos = np.concatenate([np.arange(m) for m in lens])
    tok = rng.integers(0, 30, n)
    base = [rng.standard_normal((n, d)) + (j % 2) for j in range(n_layers)]
    reason = [x + 0.1 * rng.standard_normal((n, d)) for x in base]
    sequences = [{"id": f"s{j}", "label": j % 2} for j in range(n_seq)]
    return base, reason, tok, seq, pos, sequences


def _pair(root: Path, dtype="float16") -> tuple[Path, Path]:
    base, reason, tok, seq, pos, sequences = _layers()
    a = write_store(root / "base", base, tok, seq, pos, sequences, storage_dtype=dtype)
    b = write_store(root / "reason", reason, tok, seq, pos, sequences, storage_dtype=dtype)
    return a, b


def _flip(path: Path, where: float = 0.5) -> None:
    """XOR one byte in the middle of ``path`` (for a float it changes a value, stays finite)."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


def _run_hrsa(a, b, out):
    compare_stores(a, b, HRSASettings(**SMALL))


def _run_probe(a, b, out):
    probe_stores(a, b, seed=0)


def _run_pair_check(a, b, out):
    pair_check(a, b, out)


CONSUMERS = {"hrsa": _run_hrsa, "probe": _run_probe, "pair_check": _run_pair_check}


@pytest.fixture(scope="module")
def sound_pair(tmp_path_factory):
    return _pair(tmp_path_factory.mktemp("sound"))


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_sound_stores_pass_every_consumer(sound_pair, consumer, tmp_path):
    CONSUMERS[consumer](*sound_pair, tmp_path / "check.json")
    if consumer == "pair_check":
        assert json.loads((tmp_path / "check.json").read_text())["aligned"]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("side", ["base", "reason"])
def test_one_flipped_byte_in_any_file_fails_every_consumer_naming_it(
    tmp_path, name, consumer, side
):
    a, b = _pair(tmp_path)
    bad = (a if side == "base" else b) / name
    _flip(bad)
    out = tmp_path / "check.json"
    if consumer == "pair_check" and name.startswith("hidden_"):
        # a local rule on the submit node: it checks what it reads and every layer file's
        # size, not the layer files' bytes (HRSA and the probe verify those)
        CONSUMERS[consumer](a, b, out)
        assert out.exists()
        return
    with pytest.raises(StoreError) as info:
        CONSUMERS[consumer](a, b, out)
    message = str(info.value)
    assert f"{bad}: sha256" in message and "does not match the manifest" in message
    assert f"rm -r {bad.parent}" in message  # how to rebuild it
    assert not out.exists()  # the pair check recorded nothing


def test_the_engine_verifies_without_an_extra_read(sound_pair, monkeypatch):
    """Every file is hashed from the bytes the analysis reads: nothing is left to read at the
    end (the probe, which reads the last layer only, reads the other layers at the end)."""
    left = {}
    original = store._FileCheck.finish

    def spy(self):
        left[self.path.name] = self.size - self.hashed
        return original(self)

    monkeypatch.setattr(store._FileCheck, "finish", spy)
    compare_stores(*sound_pair, HRSASettings(**SMALL))
    assert set(left) == set(FILES) and not any(left.values()), left
    left.clear()
    probe_stores(*sound_pair, seed=0)
    assert left["hidden_002.npy"] == 0 and left["token_ids.npy"] == 0
    assert left["hidden_000.npy"] > 0 and left["hidden_001.npy"] > 0


def test_several_reader_threads_hash_each_file_in_order(sound_pair, monkeypatch):
    """With 4 reader threads and the first chunk of every file read slowly, the later chunks
    still reach the checksum in file order: every file is hashed whole, none read again."""
    st = ActivationStore(sound_pair[0])
    srcs = [streaming.Source(st.layer(i), f"layer {i}") for i in range(st.n_hidden_states)]
    original = streaming.read_file_range

    def slow_first(fd, path, view, position):
        if position == srcs[0]._file[1]:
            time.sleep(0.05)
        return original(fd, path, view, position)

    monkeypatch.setattr(streaming, "read_file_range", slow_first)
    reader = streaming._ChunkReader(srcs, st.n_rows, 8, torch.device("cpu"), depth=4, workers=4)
    for _ in reader:
        pass
    for s in srcs:
        assert s.check.complete, s.name
        assert s.check.finish() is None


def test_a_corruption_that_breaks_the_analysis_is_reported_as_corruption(tmp_path):
    a, b = _pair(tmp_path, dtype="float32")
    layer = np.load(b / "hidden_001.npy", mmap_mode="r+")
    layer[5, 1] = np.nan
    layer.flush()
    del layer
    with pytest.raises(StoreError, match=r"hidden_001.npy: sha256") as info:
        compare_stores(a, b, HRSASettings(**SMALL))
    assert isinstance(info.value.__cause__, DataError)  # the NaN the engine found


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_a_truncated_layer_file_is_named_at_open(tmp_path, consumer):
    a, b = _pair(tmp_path)
    bad = b / "hidden_001.npy"
    os.truncate(bad, bad.stat().st_size - 10)
    with pytest.raises(StoreError) as info:
        CONSUMERS[consumer](a, b, tmp_path / "check.json")
    message = str(info.value)
    assert f"{bad}: " in message and "truncated" in message
    assert "mmap length" not in message and f"rm -r {b}" in message


def _verify_store(path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hrsa.cli", "verify-store", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_verify_store_reports_every_problem_without_a_traceback(tmp_path, capsys):
    a, _ = _pair(tmp_path)
    assert cli.main(["verify-store", str(a)]) == 0
    assert "ok" in capsys.readouterr().out
    _flip(a / "hidden_000.npy")
    os.truncate(a / "hidden_001.npy", 200)
    (a / "position.npy").unlink()
    _flip(a / "sequences.json")
    code, out = _verify_store(a)
    assert code == 1 and "Traceback" not in out
    assert f"{a / 'hidden_000.npy'}: sha256" in out
    assert f"{a / 'hidden_001.npy'}: " in out and "truncated" in out
    assert f"{a / 'position.npy'}: listed in the manifest, missing" in out
    assert f"{a / 'sequences.json'}: sha256" in out
    assert f"rm -r {a}" in out
    assert "hidden_002.npy" not in out  # the sound files are not blamed


@pytest.mark.parametrize(
    "manifest", [None, b"{not json", b"\xff\xfe", b"[1, 2]", b'{"n_rows": "x", "files": {}}']
)
def test_verify_store_reports_a_bad_manifest(tmp_path, capsys, manifest):
    a, _ = _pair(tmp_path)
    if manifest is None:
        (a / "manifest.json").unlink()
    else:
        (a / "manifest.json").write_bytes(manifest)
    assert cli.main(["verify-store", str(a)]) == 1
    err = capsys.readouterr().err
    assert "manifest.json" in err and "rm -r" in err
    with pytest.raises(StoreError, match="manifest.json"):
        ActivationStore(a)


def test_verify_store_on_a_missing_directory(tmp_path, capsys):
    assert cli.main(["verify-store", str(tmp_path / "nope")]) == 1
    assert "no manifest.json" in capsys.readouterr().err


# ---- locks ---------------------------------------------------------------------------------

HOLD = textwrap.dedent(
    """
    import sys
    from hrsa.locks import FileLock
    lock = FileLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    sys.stdin.read()
    """
)


def _holder(lock_file: Path) -> subprocess.Popen:
    """A process that holds the lock on ``lock_file`` until its stdin is closed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_held_lock_names_the_holders_pid_and_host(tmp_path):
    work = tmp_path / "model.work"
    proc = _holder(tmp_path / "model.work.lock")
    try:
        with pytest.raises(LockError) as info:
            locks.FileLock(tmp_path / "model.work.lock", work).acquire()
        message = str(info.value)
        assert f"pid {proc.pid}" in message and f"host {socket.gethostname()}" in message
        assert str(work) in message
        assert not locks.lock_is_free(tmp_path / "model.work.lock")
    finally:
        proc.kill()
        proc.wait()
    # the kernel released the dead holder's lock: the next writer takes it
    with locks.locked(tmp_path / "model.work.lock", work) as lock:
        assert f"{os.getpid()} " in (tmp_path / "model.work.lock").read_text()
        assert lock.fd is not None
    assert not (tmp_path / "model.work.lock").exists()  # removed on release


def test_a_lock_file_removed_by_its_holder_is_never_held_twice(tmp_path):
    path = tmp_path / "x.lock"
    first = locks.FileLock(path).acquire()
    fd = os.open(path, os.O_RDWR)  # a second process opened the old file just before
    first.release()  # unlinked, then unlocked
    second = locks.FileLock(path).acquire()  # a fresh file: not the unlinked one
    try:
        with pytest.raises(LockError):
            locks.FileLock(path).acquire()
        assert not os.path.samestat(os.fstat(fd), os.stat(path))
    finally:
        second.release()
        os.close(fd)


def test_a_file_system_without_locks_writes_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    import errno

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    with locks.locked(tmp_path / "x.lock", tmp_path / "x.work"):
        pass
    assert "does not support locks" in caplog.text and "x.work" in caplog.text


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from hrsa.store import StoreWriter
    w = StoreWriter(sys.argv[1], 20, 4, 2, "float32")
    w.append([np.ones((20, 4))] * 2, np.arange(20), np.zeros(20), np.arange(20))
    print(w.tmp, flush=True)
    sys.stdin.readline()
    w.commit([{"id": "a"}], {"dataset": "d"})
    print("committed", flush=True)
    """
)


def test_a_second_store_writer_spares_the_live_writers_temp_dir(tmp_path):
    target = tmp_path / "store"
    killed = tmp_path / ".store.tmp-killed"  # a killed writer's leftover (its lock is free)
    killed.mkdir()
    (killed / locks.LOCK_NAME).write_text("12345 elsewhere\n")
    (killed / "hidden_000.npy").write_bytes(b"half")
    live = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        live_tmp = Path(live.stdout.readline().strip())
        assert live_tmp.name.startswith(".store.tmp-") and live_tmp.is_dir()
        second = StoreWriter(target, 20, 4, 2, "float32")  # its cleanup runs here
        assert live_tmp.is_dir() and (live_tmp / "hidden_001.npy").is_file()
        assert not killed.exists()
        second.abort()
        live.stdin.write("\n")
        live.stdin.flush()
        assert live.stdout.readline().strip() == "committed"
    finally:
        live.kill()
        live.wait()
    st = ActivationStore(target)
    st.verify()
    assert not (target / locks.LOCK_NAME).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_a_killed_writers_locked_leftover_is_reclaimed(tmp_path):
    code = (
        "import os, signal, numpy as np; from hrsa.store import StoreWriter;"
        f"w = StoreWriter({str(tmp_path / 's')!r}, 100, 8, 2, 'float16');"
        "w.append([np.ones((10, 8))] * 2, np.arange(10), np.zeros(10), np.arange(10));"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    (leftover,) = tmp_path.iterdir()
    assert (leftover / locks.LOCK_NAME).is_file()  # the lock file stays, its lock does not
    assert locks.lock_is_free(leftover / locks.LOCK_NAME)
    x = np.zeros((3, 2), np.float32)
    write_store(tmp_path / "s", [x], np.arange(3), np.zeros(3), np.arange(3), [{"id": "a"}])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


# ---- the orphan-trainer race ---------------------------------------------------------------


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    from hrsa.data.contrastive import synthetic_examples, write_examples

    path = tmp_path_factory.mktemp("train-data") / "train.jsonl"
    write_examples(synthetic_examples(16, seed=0), path)
    return path


TRAIN = dict(global_batch_size=8, mini_batch_size=4, max_steps=3, save_every=2, max_length=32)


def test_a_second_trainer_fails_fast_naming_the_holder(tiny_models, train_data, tmp_path):
    """Lock level: another process holds the work directory (an orphaned trainer)."""
    from hrsa.train import train_embedding_model, work_dir_for

    out = tmp_path / "models" / "seed0"
    work = work_dir_for(out)
    work.mkdir(parents=True)
    (work / "keep").write_text("the orphan's state")
    proc = _holder(work.with_name(work.name + ".lock"))
    try:
        t0 = time.perf_counter()
        with pytest.raises(LockError) as info:
            train_embedding_model(tiny_models["base"], train_data, out, TRAIN)
        assert time.perf_counter() - t0 < 30
    finally:
        proc.kill()
        proc.wait()
    message = str(info.value)
    assert f"pid {proc.pid}" in message and socket.gethostname() in message
    assert str(work) in message
    assert (work / "keep").read_text() == "the orphan's state"  # untouched
    assert not out.exists()


def test_two_trainers_one_work_dir_the_first_completes(
    tiny_models, train_data, tmp_path, monkeypatch
):
    """Two real trainers on one work directory: the first pauses after its first step, the
    second starts then and fails fast; the first resumes, completes, and its output survives."""
    from hrsa.train import train_embedding_model, work_dir_for
    from hrsa.train.trainer import TrainingRun

    out = tmp_path / "models" / "seed0"
    paused, resume = threading.Event(), threading.Event()
    original = TrainingRun.save_snapshot

    def pausing(self, step):
        original(self, step)
        if step == 2 and not paused.is_set():
            paused.set()
            resume.wait(120)

    monkeypatch.setattr(TrainingRun, "save_snapshot", pausing)
    result = {}

    def first():
        try:
            result["summary"] = train_embedding_model(tiny_models["base"], train_data, out, TRAIN)
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert paused.wait(300), result
        with pytest.raises(LockError, match=rf"pid {os.getpid()} on host"):
            train_embedding_model(tiny_models["base"], train_data, out, TRAIN)
        assert (work_dir_for(out) / "checkpoints" / "step2").is_dir()  # not deleted
    finally:
        resume.set()
        thread.join(300)
    assert "error" not in result, result.get("error")
    assert result["summary"]["steps"] == 3
    assert (out / "model.safetensors").is_file() and (out / "training_summary.json").is_file()
    assert not work_dir_for(out).exists()
    assert not out.with_name(out.name + ".work.lock").exists()


# ---- umask ---------------------------------------------------------------------------------

MODES = textwrap.dedent(
    """
    import os, sys, numpy as np
    os.umask(int(sys.argv[2], 8))
    from pathlib import Path
    from hrsa.store import write_store
    from hrsa.tiny import _save_built
    root = Path(sys.argv[1])
    x = np.zeros((3, 2), np.float32)
    s = write_store(root / "store", [x], np.arange(3), np.zeros(3), np.arange(3), [{"id": "a"}])
    _save_built(root / "model", lambda tmp: (tmp / "config.json").write_text("{}"), {})
    for p in (s, s / "hidden_000.npy", root / "model", root / "model" / "config.json"):
        print(p.relative_to(root), oct(os.stat(p).st_mode & 0o777))
    """
)


@pytest.mark.parametrize("umask,dirs,files", [("022", "0o755", "0o644"), ("002", "0o775", "0o664")])
def test_created_directories_follow_the_umask(tmp_path, umask, dirs, files):
    proc = subprocess.run(
        [sys.executable, "-c", MODES, str(tmp_path), umask],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    modes = dict(line.split() for line in proc.stdout.splitlines())
    assert modes == {
        "store": dirs,
        "store/hidden_000.npy": files,
        "model": dirs,
        "model/config.json": files,
    }


def test_make_temp_dir_follows_the_umask_in_process(tmp_path, monkeypatch):
    for umask, mode in ((0o022, 0o755), (0o002, 0o775), (0o077, 0o700)):
        monkeypatch.setattr(locks, "_UMASK", umask)
        path, lock = locks.make_temp_dir(tmp_path, ".x.tmp-")
        try:
            assert path.stat().st_mode & 0o777 == mode
            assert not locks.lock_is_free(path / locks.LOCK_NAME)
        finally:
            lock.release()
    old = os.umask(0o027)
    try:
        monkeypatch.setattr(locks, "_UMASK", None)
        assert locks.current_umask() == 0o027
    finally:
        os.umask(old)
