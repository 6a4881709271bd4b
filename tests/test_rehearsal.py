"""The rehearsal of config/paper.yaml: generated, never drifting, the paper's keys and code paths."""

import copy
from pathlib import Path

import pytest
import yaml

from hrsa.config import validate_config
from hrsa.errors import ConfigError
from hrsa.rehearsal import ARCHITECTURES, read_settings, rehearsal_config

ROOT = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
REHEARSAL_TEXT = (ROOT / "config" / "rehearsal.yaml").read_text()
REHEARSAL = yaml.safe_load(REHEARSAL_TEXT)

# Paths whose values the rehearsal may change (sizes, hardware, data location); every other
# value of paper.yaml must reach the rehearsal unchanged.
SWAPPED = {
    ("data_mirror",),
    ("threads",),
    ("hrsa", "bootstrap"),
    ("hrsa", "permutations"),
    ("probe_datasets", "mmlu_pro", "stratify", "per_group"),
    ("training", "gpus"),
    ("training", "global_batch_size"),
    ("training", "mini_batch_size"),
    ("training", "max_steps"),
    ("training", "save_every"),
    ("training", "seeds"),
    ("training", "data", "scale"),
    ("evaluation", "benchmarks"),
    ("evaluation", "seeds"),
}


def _leaves(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, tree


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def test_committed_rehearsal_is_the_generated_one():
    """config/rehearsal.yaml equals rehearsal_config(paper.yaml): it cannot drift by hand."""
    settings = read_settings(REHEARSAL_TEXT)
    assert REHEARSAL == rehearsal_config(PAPER, **settings), (
        "config/rehearsal.yaml is stale: run `make rehearsal-config`"
    )
    validate_config(copy.deepcopy(REHEARSAL))  # validation fills defaults in place


def test_every_key_and_value_of_paper_yaml_survives_except_declared_swaps():
    for path, value in _leaves({k: v for k, v in PAPER.items() if k != "models"}):
        got = _get(REHEARSAL, path)  # KeyError = a key of paper.yaml went missing
        if path not in SWAPPED:
            assert got == value, path
    # sizes only shrink; the switches of the GPU path stay as the paper has them
    training = REHEARSAL["training"]
    for key in ("fsdp", "gradient_checkpointing", "mixed_precision", "attention", "gradient_cache"):
        assert training[key] == PAPER["training"][key], key
    assert training["fsdp"] and training["gradient_checkpointing"]
    assert training["mixed_precision"] == "bf16"
    assert training["gpus"] >= 2  # FSDP over several processes, not one
    assert training["max_steps"] > training["save_every"]  # intermediate snapshots exist
    assert REHEARSAL["hrsa"]["bootstrap"] > 0 and REHEARSAL["hrsa"]["permutations"] > 0
    assert REHEARSAL["data_mirror"] and "data_mirror" not in PAPER


def test_models_keep_their_keys_architecture_and_tokenizer_relationship():
    assert set(REHEARSAL["models"]) == set(PAPER["models"])
    models = REHEARSAL["models"]
    miner = PAPER["training"]["mining"]["model"]
    for key, spec in models.items():
        real = PAPER["models"][key]
        assert "source" not in spec and "build" in spec  # nothing is downloaded
        assert spec["label"].startswith(real["label"])
        if key == miner:  # an embedding model in sentence-transformers' format, as the real one
            assert spec["build"]["recipe"] == "embedding"
        else:
            assert spec["build"]["arch"] == ARCHITECTURES[real["architecture"]]

    def root(key):
        while "init" in models[key]["build"]:
            key = models[key]["build"]["init"]
        return key

    for name, pair in PAPER["pairs"].items():
        base, reasoning = models[pair["base"]], models[pair["reasoning"]]
        # the reasoning model is built from its base: one tokenizer, one shape, as in the real pair
        assert reasoning["build"]["init"] == pair["base"], name
        assert root(pair["reasoning"]) == root(pair["base"]), name
        assert reasoning["build"]["recipe"] == ("sft" if pair["family"] == "SFT" else "reason")
        assert (base["hidden_size"], base["num_layers"]) == (
            reasoning["hidden_size"],
            reasoning["num_layers"],
        )
    # widths follow the real ones: a 7B model's tiny stand-in is wider than a 0.5B model's
    assert models["qwen2.5-7b"]["hidden_size"] > models["qwen2.5-0.5b"]["hidden_size"]


def test_rehearsal_training_plan_fills_every_global_batch():
    from hrsa.data.contrastive import REGISTRY, planned_rows

    rows = planned_rows(REHEARSAL["training"]["data"])
    assert set(rows) == set(PAPER["training"]["data"]["sources"])
    assert min(rows.values()) >= REHEARSAL["training"]["global_batch_size"]
    # Table 7's proportions survive the scaling
    biggest = max(rows, key=rows.get)
    assert biggest == max(REGISTRY, key=lambda k: REGISTRY[k].n_paper)


def test_unknown_architecture_is_refused_naming_the_model():
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    paper["models"]["qwen2.5-7b"]["architecture"] = "LlamaForCausalLM"
    with pytest.raises(ConfigError, match="models.qwen2.5-7b.architecture"):
        rehearsal_config(paper)
