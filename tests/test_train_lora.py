"""LoRA embedding models (paper Table 6): only the adapters train, the saved model is the merged
one (checked against peft's own merge), it loads like a full model, and a killed LoRA run
resumes to identical weights."""

import json

import pytest
import torch
from safetensors.torch import load_file

from hrsa.data.contrastive import synthetic_examples, write_examples
from hrsa.errors import ConfigError
from hrsa.train import TrainConfig, TrainingInterrupted, train_embedding_model, work_dir_for
from hrsa.train.lora import add_adapter, check_adapter, merged_state_dict

ADAPTER = {"rank": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"}
SMALL = dict(
    global_batch_size=8,
    mini_batch_size=4,
    max_steps=4,
    save_every=2,
    max_length=32,
    learning_rate=1e-2,
    adapter=ADAPTER,
)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lora-data") / "train.jsonl"
    write_examples(synthetic_examples(16, seed=0), path)
    return path


@pytest.fixture(scope="module")
def lora_run(tiny_models, data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "lora-seed0"
    return out, train_embedding_model(tiny_models["base"], data_file, out, SMALL, model_key="t")


def _backbone(path):
    from hrsa.models import load_backbone

    model, _ = load_backbone(path, dtype="float32", attention="bidirectional", device="cpu")
    return model


def test_merge_equals_peft_merge_and_unload(tiny_models):
    torch.manual_seed(0)
    for targets in ("all-linear", ["q_proj", "down_proj"]):
        peft_model = add_adapter(
            _backbone(tiny_models["base"]), {**ADAPTER, "target_modules": targets}
        )
        for name, p in peft_model.named_parameters():  # B = 0 at init: give it a real update
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
        ours = merged_state_dict(peft_model, peft_model.state_dict())
        reference = peft_model.merge_and_unload().state_dict()
        assert ours.keys() == reference.keys()
        for key in reference:
            torch.testing.assert_close(ours[key], reference[key], rtol=0, atol=1e-6)
        changed = [
            k
            for k in reference
            if not torch.equal(reference[k], _backbone(tiny_models["base"]).state_dict()[k])
        ]
        assert changed and all(k.endswith("proj.weight") for k in changed)
        if targets != "all-linear":
            assert {k.split(".")[-2] for k in changed} == {"q_proj", "down_proj"}


def test_lora_run_trains_only_adapters_and_saves_a_plain_merged_model(tiny_models, lora_run):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    out, summary = lora_run
    assert summary["lora"] == ADAPTER
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"] / 4
    base = load_file(tiny_models["base"] / "model.safetensors")
    saved = load_file(out / "model.safetensors")
    assert not any("lora" in k or "base_layer" in k for k in saved)
    # what LoRA cannot touch is bit-identical to the backbone; the adapted weights moved
    shared = {k.removeprefix("model."): v for k, v in base.items()}
    same = [k for k in saved if torch.equal(saved[k], shared[k])]
    moved = [k for k in saved if k not in same]
    assert any("embed_tokens" in k for k in same) and any("norm" in k for k in same)
    assert moved and all(k.endswith("proj.weight") for k in moved)
    assert json.loads((out / "config.json").read_text())["is_causal"] is False
    assert AutoModel.from_pretrained(out) is not None
    emb = SentenceTransformer(str(out), device="cpu").encode(["x", "y"])
    assert emb.shape == (2, 64)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step2", "step4"]


def test_killed_lora_run_resumes_to_identical_weights(tiny_models, data_file, lora_run, tmp_path):
    reference, _ = lora_run
    out = tmp_path / "lora-seed0"
    with pytest.raises(TrainingInterrupted):
        train_embedding_model(tiny_models["base"], data_file, out, SMALL, interrupt_after=3)
    assert (work_dir_for(out) / "state" / "trainer_state.json").is_file()
    summary = train_embedding_model(tiny_models["base"], data_file, out, SMALL)
    assert summary["resumed_from_step"] == 2
    a, b = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"rank": 0}, "training.lora.rank"),
        ({"alpha": -1}, "training.lora.alpha"),
        ({"dropout": 1.0}, "training.lora.dropout"),
        ({"target_modules": "everything"}, "training.lora.target_modules"),
        ({"target_modules": []}, "training.lora.target_modules"),
    ],
)
def test_bad_adapter_settings_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_adapter({**ADAPTER, **bad})
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        TrainConfig.from_mapping(SMALL, adapter={**ADAPTER, **bad})
