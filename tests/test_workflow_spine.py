"""The workflow itself, on a shrunken default config, in a temporary directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hrsa.activations import ActivationStore

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def small_config(tmp_path, **overrides):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for spec in cfg["models"].values():
        spec["build"]["steps"] = 3
    for spec in cfg["probe_datasets"].values():
        spec["n"] = 40
    cfg["activations"].update(max_tokens=2000, max_sequences=40)
    cfg.pop("training", None)
    for key in ("training", "evaluation"):
        if key in cfg:
            cfg[key]["enabled"] = False
    cfg.update(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(tmp_path, *args, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-6000:])
    return proc


@pytest.mark.slow
def test_default_config_runs_through_extraction(tmp_path):
    cfg = small_config(tmp_path)
    targets = [
        f"results/checks/{p}/backbone/{d}.json"
        for p in ("tiny-small-update", "tiny-sft-control")
        for d in ("cot", "mmlu_pro", "ag_news")
    ]
    run(tmp_path, "--cores", "2", *targets, "--configfile", str(cfg))
    stores = sorted((tmp_path / "results" / "activations").glob("*/backbone/*"))
    # three models x three datasets: the shared base model is extracted once per dataset
    assert len(stores) == 9
    for path in stores:
        store = ActivationStore(path)
        store.verify()
        assert store.n_hidden_states == 5 and store.dim == 64
    check = json.loads((tmp_path / "results/checks/tiny-sft-control/backbone/cot.json").read_text())
    assert check["aligned"] and check["same_tokenizer"]
    assert (
        tmp_path / "logs" / "extract_activations" / "tiny-base" / "backbone" / "cot.log"
    ).is_file()
    assert not list((tmp_path / "results" / "activations").glob("*/backbone/.*tmp*"))


def test_bad_config_key_stops_the_workflow_naming_it(tmp_path):
    cfg = small_config(tmp_path)
    data = yaml.safe_load(cfg.read_text())
    data["pairs"]["tiny-sft-control"]["family"] = "RLHF"
    cfg.write_text(yaml.safe_dump(data))
    proc = run(tmp_path, "-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert "config key pairs.tiny-sft-control.family" in proc.stdout + proc.stderr


def test_paper_config_dry_runs_offline_with_one_extraction_per_model_and_dataset(tmp_path):
    proc = run(
        tmp_path,
        "-n",
        "--workflow-profile",
        str(ROOT / "profiles" / "local"),
        "--configfile",
        str(ROOT / "config" / "paper.yaml"),
    )
    out = proc.stdout + proc.stderr
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    models = {m for p in paper["pairs"].values() for m in (p["base"], p["reasoning"])}
    datasets = paper["hrsa"]["datasets"]
    backbone_stores = {
        line.split("output:")[1].strip()
        for line in out.splitlines()
        if "output: results/activations/" in line and "/backbone/" in line
    }
    assert backbone_stores == {
        f"results/activations/{m}/backbone/{d}" for m in models for d in datasets
    }
    # one job per distinct store: a backbone shared by two pairs is extracted once
    n_jobs = sum(1 for line in out.splitlines() if line.strip() == "rule extract_activations:")
    n_stores = sum(1 for line in out.splitlines() if "output: results/activations/" in line)
    assert n_jobs == n_stores
