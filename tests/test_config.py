"""Config validation: both shipped configs are valid; bad ones name the key."""

import copy
from pathlib import Path

import pytest
import yaml

from hrsa.config import validate_config
from hrsa.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "src" / "hrsa" / "schemas" / "config.schema.yaml"


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
            lambda c: c["pairs"]["tiny-rlvr-grpo"].update(base="nope"),
            "pairs.tiny-rlvr-grpo.base",
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


# ---- plan-time checks (hrsa.config.check_plan): what the jobs would fail on, before any job ----


def _paper():
    return copy.deepcopy(load("paper.yaml"))


def test_source_that_cannot_fill_a_global_batch_is_named():
    cfg = _paper()
    cfg["training"]["data"]["rows"] = 64  # the old silent default under source: hub
    with pytest.raises(ConfigError, match=r"training\.data: .*fever \(64 rows\).*2048"):
        validate_config(cfg, SCHEMA)
    cfg = _paper()
    cfg["training"]["data"]["rows"] = {"dureader": 100}  # one set too small, the rest Table 7
    with pytest.raises(ConfigError, match=r"dureader \(100 rows\)") as err:
        validate_config(cfg, SCHEMA)
    assert "msmarco" not in str(err.value)


def test_evaluation_seed_outside_training_seeds_is_named():
    cfg = _paper()
    cfg["evaluation"]["seeds"] = [0, 3]
    with pytest.raises(ConfigError, match=r"evaluation\.seeds: \[3\]"):
        validate_config(cfg, SCHEMA)


def test_verdict_knn_k_must_be_computed():
    cfg = _paper()
    cfg["report"] = {"verdicts": {"knn_k": 20}}
    with pytest.raises(ConfigError, match=r"report\.verdicts\.knn_k: 20"):
        validate_config(cfg, SCHEMA)
    cfg["report"]["verdicts"]["knn_k"] = 50
    validate_config(cfg, SCHEMA)


def test_save_every_zero_is_refused_by_the_schema():
    cfg = _paper()
    cfg["training"]["save_every"] = 0
    with pytest.raises(ConfigError, match=r"training\.save_every"):
        validate_config(cfg, SCHEMA)


def test_filter_on_a_field_the_source_does_not_declare_is_named():
    cfg = _paper()
    cfg["probe_datasets"]["cot"]["filters"] = {"correctness_label": 1, "difficulty": "hard"}
    with pytest.raises(ConfigError, match=r"probe_datasets\.cot\.filters\.difficulty"):
        validate_config(cfg, SCHEMA)


@pytest.mark.slow
def test_snakemake_dry_run_of_the_paper_config_catches_the_64_row_failure(tmp_path):
    """`snakemake -n` stops before any job, naming the source (it used to fail in training)."""
    import os
    import subprocess
    import sys

    cfg = _paper()
    cfg["training"]["data"]["rows"] = 64
    path = tmp_path / "paper-64.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    bad = subprocess.run(
        [*cmd, "-d", str(tmp_path), "--configfile", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode != 0
    out = bad.stdout + bad.stderr
    assert "training.data" in out and "fever (64 rows)" in out and "2048" in out
    good = subprocess.run(
        [*cmd, "-d", str(tmp_path / "ok"), "--configfile", str(ROOT / "config" / "paper.yaml")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert good.returncode == 0, good.stderr[-3000:]
    assert "train_embedding" in good.stdout
