"""Config validation: both shipped configs are valid; bad ones name the key."""

import copy
from pathlib import Path

import pytest
import yaml

from hrsa.config import validate_config
from hrsa.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_are_valid(name):
    validate_config(load(name), SCHEMA)


def test_paper_config_holds_every_pair_of_tables_1_9_10():
    cfg = load("paper.yaml")
    sources = {
        (cfg["models"][p["base"]]["source"], cfg["models"][p["reasoning"]]["source"]): (
            p["family"],
            p["algorithm"],
        )
        for p in cfg["pairs"].values()
    }
    assert (
        sources[("Qwen/Qwen2.5-Math-1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")][0] == "SFT"
    )
    assert sources[("Qwen/Qwen3-0.6B-Base", "Qwen/Qwen3-0.6B")][0] == "SFT"
    assert sources[
        (
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            "nvidia/Nemotron-Research-Reasoning-Qwen-1.5B",
        )
    ] == ("RLVR", "GRPO (ProRL)")
    assert sources[("Qwen/Qwen3-4B", "TianHongZXY/Qwen3-4B-PSR")] == ("RLVR", "PSR")
    assert sources[("Qwen/Qwen2.5-7B", "princeton-nlp/zero__ppo__think__Qwen2.5-7B")] == (
        "RLVR",
        "PPO",
    )
    algos = {p["algorithm"].split()[0] for p in cfg["pairs"].values()}
    assert {"SFT", "GRPO", "DAPO", "PPO", "PSR"} <= algos
    assert len(cfg["pairs"]) == 9
    assert all("revision" in m for m in cfg["models"].values())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["pairs"]["tiny-sft-control"].update(family="PPO"),
            "pairs.tiny-sft-control.family",
        ),
        (lambda c: c["activations"].update(batchsize=3), "activations.batchsize: unknown key"),
        (
            lambda c: c["pairs"]["tiny-small-update"].update(base="nope"),
            "pairs.tiny-small-update.base",
        ),
        (lambda c: c["hrsa"].update(datasets=["cot", "imdb"]), "hrsa.datasets"),
        (lambda c: c["activations"].update(batch_size=0), "activations.batch_size"),
        (lambda c: c["models"]["tiny-base"].update(source="Qwen/Qwen2.5-0.5B"), "models.tiny-base"),
        (lambda c: c["hrsa"]["probe"].update(dataset="cot"), "hrsa.probe.dataset"),
    ],
)
def test_bad_config_names_the_key(edit, message):
    cfg = copy.deepcopy(load("config.yaml"))
    edit(cfg)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate_config(cfg, SCHEMA)


def test_cli_validates_and_reports_errors(tmp_path, capsys):
    from hrsa.cli import main

    assert main(["validate-config", str(ROOT / "config" / "paper.yaml")]) == 0
    bad = load("config.yaml")
    bad["activations"]["storage_dtype"] = "int8"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["validate-config", str(tmp_path / "bad.yaml")]) == 1
    assert "activations.storage_dtype" in capsys.readouterr().err
