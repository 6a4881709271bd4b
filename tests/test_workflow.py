"""The workflow itself, on a shrunken default config, in a temporary directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
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
    cfg["activations"]["batch_size"] = 8
    cfg["hrsa"].update(bootstrap=10, permutations=5)
    cfg["training"]["data"]["n_per_source"] = 32
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


@pytest.mark.slow(minutes=11)
def test_default_config_runs_end_to_end_to_the_report(tmp_path):
    """The README's run on a shrunken default config: every stage, every contract."""
    cfg = small_config(tmp_path)
    # a metric from outside the package, as a plug-in file, next to the configured ones
    config = yaml.safe_load(cfg.read_text())
    config["hrsa"]["plugins"] = [str(ROOT / "tests" / "plugins" / "toy_metric.py")]
    config["hrsa"]["extra_metrics"] = [*config["hrsa"]["extra_metrics"], "spread_ratio"]
    cfg.write_text(yaml.safe_dump(config))
    run(tmp_path, "--cores", "2", "--configfile", str(cfg))
    res = tmp_path / "results"
    pairs = ("tiny-rlvr-grpo", "tiny-sft-control")
    datasets = ("cot", "mmlu_pro", "ag_news")
    # activation stores: 3 models x 3 datasets x (backbone, emb) + snapshots on cot; a backbone
    # shared by two pairs is extracted once
    backbone = sorted(res.glob("activations/*/backbone/*"))
    assert len(backbone) == 9 and len(sorted(res.glob("activations/*/emb/*"))) == 9
    assert sorted(p.name for p in res.glob("activations/tiny-base/step*")) == [
        "step10",
        "step20",
        "step30",
    ]
    for path in backbone:
        store = ActivationStore(path)
        store.verify()
        assert store.n_hidden_states == 5 and store.dim == 64
    assert not list(res.glob("activations/*/*/.*tmp*"))
    check = json.loads((res / "checks/tiny-sft-control/backbone/cot.json").read_text())
    assert check["aligned"] and check["same_tokenizer"]
    # the RLVR (GRPO) and SFT partners' build records, drawn in the task-training figure
    for model, algorithm in (("tiny-rlvr", "GRPO"), ("tiny-sft", "SFT")):
        record = json.loads((res / "models" / model / "hrsa_build.json").read_text())
        assert record["algorithm"] == algorithm and record["heldout_n"] == 300
        assert 0 <= record["heldout_accuracy"] <= 1
        assert list(record["weight_change"])[:2] == ["embed", "layer0"]
    assert (res / "report" / "figure_task_training.png").is_file()
    # embedding models with snapshots, loadable as the contract says
    for model in ("tiny-base", "tiny-rlvr", "tiny-sft"):
        emb = res / "embeddings" / model / "seed0"
        assert json.loads((emb / "config.json").read_text())["is_causal"] is False
        assert sorted(p.name for p in (emb / "checkpoints").iterdir()) == [
            "step10",
            "step20",
            "step30",
        ]
        log = [json.loads(line) for line in (emb / "train_log.jsonl").read_text().splitlines()]
        assert log[-1]["loss"] < log[0]["loss"]
    # HRSA for both pairs, every dataset and stage; the probe on the labelled dataset
    for pair in pairs:
        for stage in ("backbone", "emb"):
            for dataset in datasets:
                out = res / "hrsa" / pair / stage / dataset
                metrics = pd.read_csv(out / "metrics.csv")
                assert list(metrics.columns) == [
                    "metric",
                    "layer_base",
                    "layer_reason",
                    "k",
                    "value",
                    "ci_low",
                    "ci_high",
                ]
                assert (metrics["metric"] == "linear_cka").sum() == 25
                summary = json.loads((out / "summary.json").read_text())
                assert 0 <= summary["headline"]["h_inv_final"]["value"] <= 1
                # every extra metric, the plug-in's too, per hidden state
                for name in config["hrsa"]["extra_metrics"]:
                    assert (metrics["metric"] == name).sum() == 5, name
                    assert len(summary["extra_metrics"][name]["per_layer"]) == 5
            assert len(pd.read_csv(res / "hrsa" / pair / stage / "ag_news" / "probe.csv")) == 12
        for step in (10, 20, 30):
            assert (res / "hrsa" / pair / f"step{step}" / "cot" / "summary.json").is_file()
    # MTEB result files, tidy CSVs and Table 1
    for model in ("tiny-base", "tiny-rlvr", "tiny-sft"):
        scores = pd.read_csv(res / "mteb" / model / "emb" / "seed0" / "HRSA-Local.csv")
        assert (scores["status"] == "ok").all() and set(scores["task_type"]) >= {
            "Retrieval",
            "Classification",
            "STS",
            "Clustering",
        }
        assert list((res / "mteb" / model / "emb" / "seed0" / "HRSA-Local").rglob("*.json"))
    table1 = pd.read_csv(res / "mteb" / "table1.csv")
    assert set(table1["pair"]) == set(pairs) and table1["delta_mean"].notna().all()
    # the LoRA twin of tiny-rlvr (training.lora): trained with adapters, saved merged (a plain
    # model), evaluated, and Table 6 sets it against the full model
    lora = res / "embeddings" / "tiny-rlvr" / "lora-seed0"
    lora_summary = json.loads((lora / "training_summary.json").read_text())
    assert lora_summary["lora"]["rank"] == 8
    assert lora_summary["trainable_parameters"] < lora_summary["total_parameters"] / 4
    assert json.loads((lora / "config.json").read_text())["is_causal"] is False
    table6 = pd.read_csv(res / "report" / "table6.csv")
    assert list(table6["model"]) == ["tiny-rlvr"] and (table6["n_seeds"] == 1).all()
    assert table6[["lora_mean", "full_mean"]].notna().all().all()
    assert table6["full_mean"].iloc[0] == pytest.approx(
        pd.read_csv(res / "mteb" / "summary.csv")
        .query("model == 'tiny-rlvr' and stage == 'emb'")["mean_task"]
        .iloc[0]
    )
    # the report lists every table and figure it wrote, and each exists
    report = res / "report"
    readme = (report / "README.md").read_text()
    for name in ["table1", "table2", "table3", "table4", "table6", "table7", "table12", "table13"]:
        assert (report / f"{name}.csv").is_file() and (report / f"{name}.md").is_file()
        assert f"({name}.csv)" in readme
    for n in [3, 4, 6, 7, 8, 9, 10, 11, 12, 13]:
        assert (report / f"figure{n}.png").is_file() and (report / f"figure{n}.pdf").is_file()
        assert f"figure{n}.png" in readme
    for pair in pairs:
        assert (report / "figure5" / f"{pair}.png").is_file()
    # the Table 8 figure draws every extra metric, the plug-in's too, for every pair
    assert (report / "figure_table8.png").is_file() and "figure_table8.png" in readme
    drawn = pd.read_csv(report / "figure_table8.csv")
    labelled = config["hrsa"]["probe"]["extra_metrics"]
    assert labelled == ["behavioural_consistency"]
    assert set(drawn["metric"]) == set(config["hrsa"]["extra_metrics"]) | set(labelled)
    consistency = drawn[drawn["metric"] == "behavioural_consistency"]
    assert set(consistency["pair"]) == set(pairs) and consistency["layer"].isna().all()
    assert consistency["value"].between(0, 1).all()
    assert set(drawn[drawn["metric"] == "spread_ratio"]["pair"]) == set(pairs)
    assert (
        tmp_path / "logs" / "extract_activations" / "tiny-base" / "backbone" / "cot.log"
    ).is_file()
    # the same config with the keys of every section in another order reruns nothing (params
    # are recorded as text; hrsa.plan normalises them)
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(
        yaml.safe_dump(reverse_keys(yaml.safe_load(cfg.read_text())), sort_keys=False)
    )
    assert reordered.read_text() != cfg.read_text()
    dry = run(tmp_path, "-n", "--configfile", str(reordered))
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]


def reverse_keys(value, top=True):
    """Every mapping's keys in reverse order, except the order of pairs and models (which is the
    order of rows in the report: a real change) and of the top level."""
    if isinstance(value, dict):
        items = list(value.items()) if top else list(reversed(value.items()))
        return {
            k: (
                {n: reverse_keys(v2, top=False) for n, v2 in v.items()}
                if top and k in ("pairs", "models")
                else reverse_keys(v, top=False)
            )
            for k, v in items
        }
    if isinstance(value, list):
        return [reverse_keys(v, top=False) for v in value]
    return value


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
