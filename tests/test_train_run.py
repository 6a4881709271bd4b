"""Training runs: checkpoint layout, kill-and-resume, the default config lowers the loss, and
bad input is rejected before any model is loaded."""

import json

import pytest
import torch
from safetensors.torch import load_file

from hrsa.data.contrastive import ContrastiveExample, synthetic_examples, write_examples
from hrsa.errors import ConfigError, DataError
from hrsa.train import (
    TrainConfig,
    TrainingInterrupted,
    launch,
    snapshot_steps,
    train_embedding_model,
    work_dir_for,
)

SMALL = dict(
    global_batch_size=8,
    mini_batch_size=4,
    max_steps=5,
    save_every=2,
    max_length=32,
    learning_rate=1e-3,
)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("train-data") / "train.jsonl"
    write_examples(synthetic_examples(16, seed=0), path)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tiny_models, data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full" / "seed0"
    summary = train_embedding_model(tiny_models["base"], data_file, out, SMALL, model_key="tiny")
    return out, summary


def test_checkpoint_layout(uninterrupted):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    from hrsa.models import attention_is_bidirectional

    out, summary = uninterrupted
    assert snapshot_steps(5, 2) == [2, 4, 5] == summary["snapshots"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step2", "step4", "step5"]
    assert not work_dir_for(out).exists() and not (out / "state").exists()
    for d in (out, out / "checkpoints" / "step2"):
        assert json.loads((d / "config.json").read_text())["is_causal"] is False
        assert (d / "tokenizer.json").is_file() and (d / "modules.json").is_file()
        assert attention_is_bidirectional(AutoModel.from_pretrained(d))
    assert SentenceTransformer(str(out / "checkpoints" / "step4"), device="cpu").encode(
        ["x"]
    ).shape == (1, 64)
    final, last = (
        load_file(out / "model.safetensors"),
        load_file(out / "checkpoints/step5/model.safetensors"),
    )
    assert all(torch.equal(final[k], last[k]) for k in final)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert all({"loss", "lr", "source"} <= set(r) for r in log)
    assert summary["model"] == "tiny" and summary["attention_bidirectional_verified"]
    assert json.loads((out / "training_summary.json").read_text())["steps"] == 5


def test_killed_run_resumes_to_identical_weights(tiny_models, data_file, uninterrupted, tmp_path):
    reference, _ = uninterrupted
    out = tmp_path / "resumed" / "seed0"
    with pytest.raises(TrainingInterrupted):
        train_embedding_model(tiny_models["base"], data_file, out, SMALL, interrupt_after=3)
    work = work_dir_for(out)
    assert not out.exists() and (work / "state" / "trainer_state.json").is_file()
    assert len((work / "train_log.jsonl").read_text().splitlines()) == 3
    summary = train_embedding_model(tiny_models["base"], data_file, out, SMALL)
    assert summary["resumed_from_step"] == 2
    a, b = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log_a = (reference / "train_log.jsonl").read_text().splitlines()
    log_b = (out / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in log_a] == [json.loads(x)["loss"] for x in log_b]


def test_default_config_lowers_the_loss(tmp_path):
    from hrsa.tiny import build_tiny

    base = tmp_path / "tiny-base"
    build_tiny(base, recipe="base", seed=0)  # like the default config's, without its task mix
    data = tmp_path / "train.jsonl"
    write_examples(synthetic_examples(64, seed=0), data)  # the default 4 sources x 64
    out = tmp_path / "emb" / "seed0"
    cfg = TrainConfig()
    summary = train_embedding_model(base, data, out, cfg)
    losses = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == cfg.max_steps == 30
    per_pass = 256 // cfg.global_batch_size  # every pass sees every source twice
    first, third = losses[:per_pass], losses[2 * per_pass : 3 * per_pass]
    assert sum(third) / per_pass < 0.75 * sum(first) / per_pass, losses
    assert summary["wall_seconds_this_run"] < 120


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_bad_input_fails_before_training(tmp_path, monkeypatch):
    missing_model = tmp_path / "no-model"  # never loaded: the data errors come first
    out = tmp_path / "out"
    empty = _write(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataError, match="empty.jsonl"):
        train_embedding_model(missing_model, empty, out, SMALL)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(synthetic_examples(1)[0].to_dict()) + "\n[1, \n")
    with pytest.raises(DataError, match="bad.jsonl:2"):
        train_embedding_model(missing_model, bad, out, SMALL)
    no_neg = _write(
        tmp_path / "noneg.jsonl",
        [ContrastiveExample(f"q{i}", f"p{i}", (), "i", "s").to_dict() for i in range(16)],
    )
    with pytest.raises(DataError, match="no negatives"):
        train_embedding_model(missing_model, no_neg, out, SMALL)
    small = _write(tmp_path / "small.jsonl", [e.to_dict() for e in synthetic_examples(4)])
    with pytest.raises(DataError, match="full global batch"):
        train_embedding_model(missing_model, small, out, SMALL)
    good = _write(tmp_path / "good.jsonl", [e.to_dict() for e in synthetic_examples(16)])
    with pytest.raises(
        ConfigError,
        match=r"config key training\.global_batch_size: \d+ is not divisible by 3 processes",
    ):
        launch(
            backbone=str(missing_model),
            data=str(good),
            out_dir=str(out),
            config=SMALL,
            num_processes=3,
        )
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(
        ConfigError,
        match=r"config key training\.global_batch_size: \d+ is not divisible by the 3 processes",
    ):
        train_embedding_model(missing_model, good, out, SMALL)
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ConfigError, match=r"config key training\.temperature: must be > 0"):
        TrainConfig.from_mapping({"temperature": 0})
    assert TrainConfig.from_mapping({"learning_rate": "2e-5"}).learning_rate == 2e-5
    assert not out.exists()
