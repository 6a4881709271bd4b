"""The evaluation rules: paper-config dry run (offline), through a Snakefile that includes only
common.smk, models.smk and evaluate.smk with a stub for the training stage's checkpoints. The real
default run to Table 1 is part of the end-to-end test in tests/test_workflow.py.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

STUB_SNAKEFILE = """
configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/evaluate.smk"


rule stub_embedding_checkpoint:
    input:
        lambda wc: PLAN.model_input(wc.model),
    output:
        directory("results/embeddings/{model}/seed{seed}"),
    log:
        "logs/stub/{model}/seed{seed}.log",
    run:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import (
            Normalize,
            Pooling,
            Transformer,
        )

        t = Transformer(input[0], max_seq_length=128)
        t.auto_model.config.is_causal = False
        dim = t.get_embedding_dimension()
        SentenceTransformer(modules=[t, Pooling(dim, "mean"), Normalize()]).save(output[0])
"""


def workflow_root(tmp_path):
    """A workflow directory: the repo's rules, scripts, config, envs + the stub Snakefile."""
    root = tmp_path / "wf"
    root.mkdir()
    for name in ("rules", "workflow", "config", "envs", "src"):
        (root / name).symlink_to(ROOT / name)
    (root / "Snakefile").write_text(STUB_SNAKEFILE)
    return root


def config_file(tmp_path, evaluation, **changes):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for spec in cfg["models"].values():
        spec.setdefault("build", {})["steps"] = 3
    cfg.pop("training", None)
    cfg["evaluation"] = evaluation
    cfg.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(tmp_path, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(workflow_root(tmp_path) / "Snakefile")]
    proc = subprocess.run(
        [*cmd, "-d", str(work), *args], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return work, proc.stdout + proc.stderr


def job_counts(output):
    counts = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_paper_config_dry_runs_offline(tmp_path):
    models = {
        "qwen3-0.6b-base": {"source": "Qwen/Qwen3-0.6B-Base", "revision": "a" * 40},
        "qwen3-0.6b": {"source": "Qwen/Qwen3-0.6B", "revision": "b" * 40},
        "qwen2.5-1.5b": {"source": "Qwen/Qwen2.5-1.5B", "revision": "c" * 40},
        "simplerl-1.5b": {"source": "hkust-nlp/Qwen-2.5-1.5B-SimpleRL-Zoo", "revision": "d" * 40},
    }
    pairs = {
        "qwen3-sft": {
            "base": "qwen3-0.6b-base",
            "reasoning": "qwen3-0.6b",
            "family": "SFT",
            "algorithm": "SFT",
        },
        "zoo-1.5b": {
            "base": "qwen2.5-1.5b",
            "reasoning": "simplerl-1.5b",
            "family": "RLVR",
            "algorithm": "GRPO",
        },
    }
    evaluation = {
        "enabled": True,
        "benchmarks": ["MTEB(Multilingual, v2)", "MTEB(Code, v1)", "BRIGHT"],
        "tasks": {"MTEB(Code, v1)": ["AppsRetrieval", "CosQA"]},
        "seeds": [0, 1, 2],
        "batch_size": 4,
        "max_length": 8192,
        "evaluate_backbone": True,
        "gpus": 1,
    }
    cfg = config_file(
        tmp_path,
        evaluation,
        models=models,
        pairs=pairs,
        training={"enabled": True, "seeds": [0, 1, 2]},
    )
    start = time.perf_counter()
    work, out = snakemake(tmp_path, "-n", "results/mteb/table1.csv", "--configfile", str(cfg))
    assert time.perf_counter() - start < 60
    counts = job_counts(out)
    # 4 models x (3 seeds + 1 backbone) x 3 benchmarks
    assert counts["evaluate_mteb"] == 4 * 4 * 3
    assert counts["mteb_table1"] == 1
    assert "results/mteb/qwen3-0.6b/emb/seed2/MTEB_Multilingual_v2.csv" in out
    assert "results/mteb/simplerl-1.5b/backbone/seed0/BRIGHT.csv" in out
    assert not (work / "results").exists()
