"""The tiny RLVR pair: the max3 task, its verifier and split, GRPO and task SFT builds."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from hrsa import tiny_rl
from hrsa.config import validate_config
from hrsa.errors import ConfigError
from hrsa.tiny import build_tiny

ROOT = Path(__file__).resolve().parents[1]


def test_verifier_is_an_exact_match_of_the_first_integer():
    assert tiny_rl.verify(" 7", 7) == 1.0
    assert tiny_rl.verify("7 because", 7) == 1.0
    assert tiny_rl.verify(" 17", 7) == 0.0  # the whole integer, not a digit of it
    assert tiny_rl.verify(" 6", 7) == 0.0
    assert tiny_rl.verify(" x 7", 7) == 0.0  # the answer must come first
    assert tiny_rl.verify("", 7) == 0.0
    assert tiny_rl.verify(" 0", 0) == 1.0
    assert tiny_rl.well_formed(" 3") == 1.0 and tiny_rl.well_formed(" A") == 0.0


def test_split_is_seeded_and_disjoint_and_docs_use_training_triples_only():
    train, held = tiny_rl.split(0, 300)
    assert len(held) == 300 and len(train) == 700
    assert not set(train) & set(held) and len(set(train) | set(held)) == 1000
    assert tiny_rl.split(0, 300) == (train, held)
    assert tiny_rl.split(1, 300)[1] != held
    docs = tiny_rl.pretraining_docs(train, seed=0, noise=0.6)
    lines = [line.split() for doc in docs for line in doc.split("\n")]
    seen = {tuple(int(x) for x in w[2:5]) for w in lines}
    assert seen <= set(train) and len(seen) > 600
    wrong = sum(int(w[6]) != max(int(x) for x in w[2:5]) for w in lines) / len(lines)
    assert 0.55 < wrong < 0.65
    for w in lines:  # every wrong answer is the off-by-one error
        t = tuple(int(x) for x in w[2:5])
        assert int(w[6]) in (max(t), (max(t) - 1) % 10)
    clean = tiny_rl.pretraining_docs(train, seed=0, noise=0.0)
    assert all(
        int(w[6]) == max(int(x) for x in w[2:5])
        for doc in clean
        for w in (line.split() for line in doc.split("\n"))
    )


@pytest.fixture(scope="module")
def task_models(tmp_path_factory):
    """A base pre-trained on max3 and its GRPO and task-SFT partners (short: seconds)."""
    root = tmp_path_factory.mktemp("tiny-rl")
    base = build_tiny(root / "base", recipe="base", task="max3", steps=300, seed=0)
    kw = dict(init=root / "base", seed=0, steps=40, lr=1e-3)
    rlvr = build_tiny(root / "rlvr", recipe="rlvr", **kw)
    sft = build_tiny(root / "sft", recipe="task_sft", **kw)
    return root, base, rlvr, sft


def test_base_records_its_task_and_held_out_accuracy(task_models):
    root, base, _, _ = task_models
    assert base["task"] == {"name": "max3", "split_seed": 0, "heldout": 300, "noise": 0.6}
    assert 0.0 <= base["heldout_accuracy"] < 0.9
    assert json.loads((root / "base" / "hrsa_build.json").read_text()) == base
    # every prompt is 8 tokens and every answer one, with the tokenizer as saved
    tok = tiny_rl.load_tokenizer(root / "base")
    tiny_rl.check_tokenizer(tok)


def test_grpo_raises_the_reward_and_the_held_out_accuracy(task_models):
    _, base, rlvr, _ = task_models
    assert rlvr["algorithm"] == "GRPO" and rlvr["group_size"] == 8 and rlvr["beta"] == 0.0
    assert len(rlvr["reward_curve"]) == 40
    assert rlvr["reward_last"] > rlvr["reward_first"] + 0.1
    assert rlvr["heldout_accuracy_before"] == pytest.approx(base["heldout_accuracy"])
    assert rlvr["heldout_accuracy"] > rlvr["heldout_accuracy_before"]


def test_task_sft_trains_on_the_gold_answers(task_models):
    _, base, _, sft = task_models
    assert sft["algorithm"] == "SFT" and len(sft["loss_curve"]) == 40
    assert sft["heldout_accuracy_before"] == pytest.approx(base["heldout_accuracy"])
    assert sft["heldout_accuracy"] > sft["heldout_accuracy_before"]


def test_grpo_build_is_deterministic_for_a_seed(task_models, tmp_path):
    root, _, rlvr, _ = task_models
    again = build_tiny(
        tmp_path / "rlvr", recipe="rlvr", init=root / "base", seed=0, steps=40, lr=1e-3
    )
    assert again["reward_curve"] == rlvr["reward_curve"]
    a, b = (
        load_file(root / "rlvr" / "model.safetensors"),
        load_file(tmp_path / "rlvr" / "model.safetensors"),
    )
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_weight_change_matches_numpy(task_models):
    root, _, rlvr, sft = task_models
    w0 = load_file(root / "base" / "model.safetensors")
    for name, record in (("rlvr", rlvr), ("sft", sft)):
        w1 = load_file(root / name / "model.safetensors")
        expected = {}
        for layer in range(4):
            keys = [k for k in w0 if k.startswith(f"model.layers.{layer}.")]
            diff = sum(float(np.sum((w1[k].astype(np.float64) - w0[k]) ** 2)) for k in keys)
            norm = sum(float(np.sum(w0[k].astype(np.float64) ** 2)) for k in keys)
            expected[f"layer{layer}"] = np.sqrt(diff / norm)
        e0, e1 = w0["model.embed_tokens.weight"], w1["model.embed_tokens.weight"]
        expected["embed"] = np.linalg.norm(e1 - e0) / np.linalg.norm(e0)
        got = tiny_rl.relative_weight_change(root / "base", root / name)
        assert list(got)[:5] == ["embed", "layer0", "layer1", "layer2", "layer3"]
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-6), (name, key)
            assert record["weight_change"][key] == pytest.approx(value, rel=1e-5), (name, key)
    assert tiny_rl.relative_weight_change(root / "base", root / "base")["layer0"] == 0.0


def test_task_recipes_need_a_base_pretrained_on_the_task(tmp_path, tiny_models):
    with pytest.raises(ConfigError, match="models.<key>.build.init: recipe 'rlvr' needs `init`"):
        build_tiny(tmp_path / "r", recipe="rlvr", init=None)
    with pytest.raises(ConfigError, match="models.<key>.build.init: .* not pre-trained on a task"):
        build_tiny(tmp_path / "r", recipe="task_sft", init=tiny_models["base"], steps=1)
    with pytest.raises(ConfigError, match="models.<key>.build.task: only the base recipe"):
        build_tiny(tmp_path / "r", recipe="reason", init=tiny_models["base"], task="max3")
    with pytest.raises(ConfigError, match="models.<key>.build.task: unknown task"):
        build_tiny(tmp_path / "r", recipe="base", task="sort", steps=1)
    with pytest.raises(ConfigError, match="models.<key>.build.group_size"):
        tiny_rl.train_rlvr(
            None, None, [], init_dir=tmp_path, steps=1, lr=1e-3, seed=0, group_size=1
        )


def _config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["tiny-base"]["build"].pop("task"), "models.tiny-rlvr.build.init"),
        (
            lambda m: m["tiny-rlvr"]["build"].update(group_size=1),
            "models.tiny-rlvr.build.group_size",
        ),
        (lambda m: m["tiny-rlvr"]["build"].update(beta=-0.1), "models.tiny-rlvr.build.beta"),
        (lambda m: m["tiny-base"]["build"].update(task="sort"), "models.tiny-base.build.task"),
        (lambda m: m["tiny-sft"]["build"].pop("init"), "models.tiny-sft.build.init"),
    ],
)
def test_bad_task_build_keys_name_the_key(edit, message):
    cfg = copy.deepcopy(_config())
    edit(cfg["models"])
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_default_pairs_are_base_vs_grpo_and_base_vs_task_sft():
    cfg = validate_config(_config())
    pairs = {p["family"]: p for p in cfg["pairs"].values()}
    assert pairs["RLVR"]["algorithm"] == "GRPO"
    assert cfg["models"][pairs["RLVR"]["reasoning"]]["build"]["recipe"] == "rlvr"
    assert cfg["models"][pairs["SFT"]["reasoning"]]["build"]["recipe"] == "task_sft"
    assert pairs["RLVR"]["base"] == pairs["SFT"]["base"]
    assert all(m["build"]["recipe"] not in ("reason", "sft") for m in cfg["models"].values())


def test_task_training_figure_and_table_from_the_build_records(task_models, tmp_path):
    from hrsa.report import figures, style

    _, _, rlvr, sft = task_models
    records, labels = {"r": rlvr, "s": sft}, {"r": "Tiny-RLVR", "s": "Tiny-SFT"}
    table = figures.task_training_table(records, labels).set_index("model")
    assert table.loc["r", "algorithm"] == "GRPO" and table.loc["s", "algorithm"] == "SFT"
    assert table.loc["r", "heldout_accuracy"] == rlvr["heldout_accuracy"]
    assert table.loc["s", "dW_embed"] == sft["weight_change"]["embed"]
    style.save_figure(
        figures.task_training_figure(records, labels), tmp_path / "f.png", tmp_path / "f.pdf"
    )
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_the_default_plan_draws_the_task_training_figure_from_the_partners_records():
    from hrsa.plan import Plan

    plan = Plan(validate_config(_config()), exists=lambda p: False)
    assert plan.task_trained_models() == ["tiny-rlvr", "tiny-sft"]
    assert plan.task_figure_inputs() == [
        "results/models/tiny-rlvr",
        "results/models/tiny-sft",
    ]
    assert "results/report/figure_task_training.png" in plan.report_targets()


def test_grpo_with_a_kl_penalty_and_the_format_reward(task_models, tmp_path):
    """beta > 0: trl reloads the reference model from the base directory; the format reward
    is added to the exact-match one, and the recorded curve stays the verifier's reward."""
    root = task_models[0]
    record = build_tiny(
        tmp_path / "r", recipe="rlvr", init=root / "base", steps=3, beta=0.04, format_reward=True
    )
    assert record["beta"] == 0.04 and record["format_reward"] is True
    assert len(record["reward_curve"]) == 3 and all(0 <= r <= 1 for r in record["reward_curve"])
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert str(root) not in json.dumps(config)  # trl's reload path is not saved
