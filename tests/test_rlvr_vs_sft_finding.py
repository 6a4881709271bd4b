"""The default run's RLVR and SFT pairs, at full default scale: what held on every seed tried.

The default config's tiny base, its GRPO partner and its task-SFT partner are built as `make run`
builds them (same recipes, steps and learning rates; only the seed changes), their activations
on the CoT probe set extracted and HRSA computed by the workflow's own rules. The assertions are
only what was observed on all of seeds 0, 1 and 2 (numbers in README, "The tiny RLVR pair"):

- GRPO raises the greedy held-out accuracy above the base's (0.82->0.88, 0.24->0.99, 0.54->0.82);
- RL moves the token embedding far less than SFT does (||dW||/||W|| 0.03 vs 0.41-0.44);
- at the LLM stage the RLVR pair is closer to its base than the SFT pair in linear CKA, H_inv and
  the k-NN overlap, with separate bootstrap intervals (hrsa.report.contrast).

Not asserted, because it did not hold on every seed: which pair is closer once both are trained
into embedding models (SFT was closer in CKA on seeds 0 and 1, H_inv flipped between seeds).

Seed 0 (the default) runs in the suite; ``HRSA_FINDING_SEEDS=0,1,2`` runs all three (~2.5 min
each on one core).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hrsa.report import collect, contrast

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [int(s) for s in os.environ.get("HRSA_FINDING_SEEDS", "0").split(",") if s.strip()]
PAIRS = ("tiny-rlvr-grpo", "tiny-sft-control")
TASK_MODELS = ("tiny-base", "tiny-rlvr", "tiny-sft")


def default_config_with_seed(tmp_path: Path, seed: int) -> tuple[Path, dict]:
    """The default config unchanged except the task models' build seed."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for model in TASK_MODELS:
        cfg["models"][model]["build"]["seed"] = seed
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, cfg


@pytest.mark.slow(minutes=2)
@pytest.mark.parametrize("seed", SEEDS)
def test_rlvr_pair_is_closer_to_its_base_than_the_sft_pair(tmp_path, seed):
    config_path, cfg = default_config_with_seed(tmp_path, seed)
    targets = [f"results/hrsa/{pair}/backbone/cot/summary.json" for pair in PAIRS]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path)]
        + ["--cores", "1", "--configfile", str(config_path), "--", *targets],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    res = tmp_path / "results"

    records = {
        m: json.loads((res / "models" / m / "hrsa_build.json").read_text()) for m in TASK_MODELS
    }
    base_accuracy = records["tiny-base"]["heldout_accuracy"]
    rlvr = records["tiny-rlvr"]
    assert rlvr["algorithm"] == "GRPO" and rlvr["heldout_accuracy_before"] == base_accuracy
    assert rlvr["heldout_accuracy"] > base_accuracy
    assert rlvr["weight_change"]["embed"] < records["tiny-sft"]["weight_change"]["embed"] / 4

    pairs = collect.pairs_from_config(cfg["pairs"], cfg["models"])
    assert {p.family for p in pairs.values()} == {"RLVR", "SFT"}
    headlines = collect.read_headlines([res.parent / t for t in targets])
    families = contrast.rlvr_vs_sft(headlines, pairs, "cot", cfg.get("report", {}).get("verdicts"))
    deciding = families[families["decides"]]
    assert len(deciding) == 3 and set(deciding["stage"]) == {"backbone"}
    assert list(deciding["closer"]) == ["RLVR"] * 3, deciding.to_string()
    assert list(deciding["intervals"]) == ["separate"] * 3, deciding.to_string()
    assert contrast.finding(families, "backbone").startswith("**holds**:")
