"""A small, made-up results tree in the workflow's layout, to preview the report without a run.

``write_example_results(root)`` writes, for two or three pairs, the files the report reads
(``results/hrsa/{pair}/{stage}/{dataset}/metrics.csv``, ``summary.json``, ``probe.csv``,
``results/mteb/table1.csv`` and the training-data reports under ``results/data/train/``) with numbers shaped like the paper's: the SFT pair far apart, the
RLVR pair close, embedding models closer than their backbones. The numbers are invented; they
exercise every table and figure (tests, documentation), they are not results.

    python -m hrsa.report.examples OUT_DIR   # writes OUT_DIR/results/... and OUT_DIR/config.json
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXAMPLE_CONFIG: dict = {
    "models": {
        "qwen_math": {"label": "Qwen2.5-Math-1.5B"},
        "ds_distill": {"label": "DeepSeek-R1-Distill-Qwen-1.5B"},
        "prorl": {"label": "Nemotron-Research-Reasoning-Qwen-1.5B"},
        "qwen_05b": {"label": "Qwen2.5-0.5B"},
        "zoo_05b": {"label": "Qwen-2.5-0.5B-SimpleRL-Zoo"},
    },
    "pairs": {
        "sft": {
            "base": "qwen_math",
            "reasoning": "ds_distill",
            "family": "SFT",
            "algorithm": "SFT",
            "label": "Qwen2.5 vs DS",
        },
        "prorl": {
            "base": "ds_distill",
            "reasoning": "prorl",
            "family": "RLVR",
            "algorithm": "GRPO",
            "label": "DS vs ProRL",
        },
        "zoo": {
            "base": "qwen_05b",
            "reasoning": "zoo_05b",
            "family": "RLVR",
            "algorithm": "GRPO",
            "label": "Qwen2.5-0.5B vs Zoo",
        },
    },
}

# How close the two models of a pair are, per stage (0 = unrelated, 1 = identical).
CLOSENESS = {
    ("sft", "backbone"): 0.25,
    ("sft", "emb"): 0.55,
    ("prorl", "backbone"): 0.8,
    ("prorl", "emb"): 0.95,
    ("zoo", "backbone"): 0.9,
    ("zoo", "emb"): 0.97,
}
H_INV = {
    ("sft", "backbone"): 0.108,
    ("sft", "emb"): 0.142,
    ("prorl", "backbone"): 0.161,
    ("prorl", "emb"): 0.863,
    ("zoo", "backbone"): 0.948,
    ("zoo", "emb"): 0.983,
}
KS = (5, 10, 50)


def closeness(pair: str, stage: str) -> float:
    """The made-up closeness of ``pair`` at ``stage``; ``step{N}`` moves from backbone to emb."""
    if stage.startswith("step"):
        fraction = min(int(stage[4:]) / 200.0, 1.0)
        start, end = CLOSENESS[(pair, "backbone")], CLOSENESS[(pair, "emb")]
        return start + (end - start) * math.sqrt(fraction)
    return CLOSENESS[(pair, stage)]


def h_inv(pair: str, stage: str) -> float:
    """The made-up H_inv of ``pair`` at ``stage`` (linear from backbone to emb over the steps)."""
    if stage.startswith("step"):
        fraction = min(int(stage[4:]) / 200.0, 1.0)
        return (
            H_INV[(pair, "backbone")]
            + (H_INV[(pair, "emb")] - H_INV[(pair, "backbone")]) * fraction
        )
    return H_INV[(pair, stage)]


def _dimension_wise_correlation(s: float, i: int, j: int) -> float:
    return max(-1.0, min(1.0, s * math.exp(-abs(i - j) / 1.5) - 0.15 * (1 - s) * (i != j)))


def _linear_cka(s: float, i: int, j: int, n: int) -> float:
    return 0.35 + 0.6 * s * math.exp(-abs(i - j) / (0.25 * n + 1)) + 0.05 * (i == j)


def _knn(s: float, layer: int, n: int, k: int) -> float:
    return s**2 * (0.55 + 0.05 * math.log10(k)) * (1 - 0.3 * layer / max(n - 1, 1))


def _interval(value: float, half: float = 0.02) -> tuple[float, float]:
    return value - half, value + half


def metrics_rows(pair: str, stage: str, n_layers: int) -> list[dict]:
    """Rows of one ``metrics.csv``: every metric of the contract on ``n_layers + 1`` hidden states."""
    s = closeness(pair, stage)
    n = n_layers + 1
    rows: list[dict] = []

    def add(metric, i, j, value, k="", half=None):
        row = {"metric": metric, "layer_base": i, "layer_reason": j, "k": k, "value": value}
        if half is not None:
            row["ci_low"], row["ci_high"] = _interval(value, half)
        rows.append(row)

    for i in range(n):
        for j in range(n):
            add("dimension_wise_correlation", i, j, _dimension_wise_correlation(s, i, j))
            add("linear_cka", i, j, _linear_cka(s, i, j, n), half=0.02 if i == j else None)
            add("debiased_cka", i, j, _linear_cka(s, i, j, n) - 0.05)
        add("procrustes_h_inv", i, i, h_inv(pair, stage) * (0.8 + 0.2 * i / max(n - 1, 1)))
        add("procrustes_residual", i, i, 1 - s)
        add("linear_cka_null", i, i, 0.02)
        for k in KS:
            add("knn_overlap", i, i, _knn(s, i, n, k), k=k, half=0.015)
            add("knn_overlap_null", i, i, k / 2000, k=k)
    return rows


def summary(pair: str, stage: str, dataset: str, n_layers: int) -> dict:
    """The ``summary.json`` matching :func:`metrics_rows` (intervals of +-0.02)."""
    s = closeness(pair, stage)
    n = n_layers + 1

    def entry(value: float, half: float = 0.02) -> dict:
        lo, hi = _interval(value, half)
        return {"value": value, "ci_low": lo, "ci_high": hi}

    cka = [_linear_cka(s, i, i, n) for i in range(n)]
    correlation = [_dimension_wise_correlation(s, i, i) for i in range(n)]
    return {
        "pair": pair,
        "stage": stage,
        "dataset": dataset,
        "n_tokens": 5000,
        "n_sequences": 32,
        "n_hidden_states": n,
        "dim": 64,
        "headline": {
            "linear_cka_diagonal_mean": entry(sum(cka) / n),
            "linear_cka_final": entry(cka[-1]),
            "dimension_wise_correlation_diagonal_mean": entry(sum(correlation) / n),
            "dimension_wise_correlation_final": entry(correlation[-1]),
            "h_inv_final": entry(h_inv(pair, stage), 0.01),
            "knn_overlap_mean": {
                str(k): entry(sum(_knn(s, i, n, k) for i in range(n)) / n, 0.015) for k in KS
            },
            "knn_overlap_mean_transformer_layers": {
                str(k): entry(sum(_knn(s, i, n, k) for i in range(1, n)) / (n - 1), 0.015)
                for k in KS
            },
        },
        "null": {"linear_cka": 0.02},
        "dropped_features": {"base": 0, "reasoning": 0},
    }


def probe_rows(pair: str, stage: str) -> list[dict]:
    """Rows of one ``probe.csv``: the probe loses ``(1 - closeness) * 0.4`` accuracy on transfer."""
    s = closeness(pair, stage)
    rows = []
    for direction, fitted in (("base_to_reasoning", "base"), ("reasoning_to_base", "reasoning")):
        for split, accuracy in (("train", 0.92), ("dev", 0.86), ("test", 0.85)):
            for evaluated_on in ("base", "reasoning"):
                value = accuracy if evaluated_on == fitted else accuracy - 0.4 * (1 - s)
                rows.append(
                    {
                        "direction": direction,
                        "split": split,
                        "evaluated_on": evaluated_on,
                        "accuracy": value,
                        "macro_f1": value - 0.01,
                        "weighted_f1": value - 0.005,
                    }
                )
    return rows


def table1_rows() -> list[dict]:
    rows = []
    for pair, family, deltas in (
        ("sft", "SFT", (-0.1203, 0.0099, 0.0065)),
        ("prorl", "RLVR", (-0.0019, -0.0026, 0.0018)),
        ("zoo", "RLVR", (0.0002, 0.0012, -0.0006)),
    ):
        for benchmark, base, delta in zip(
            ("MTEB(Multilingual, v2)", "MTEB(Code, v1)", "BRIGHT"),
            (0.535, 0.5529, 0.1306),
            deltas,
            strict=True,
        ):
            rows.append(
                {
                    "pair": pair,
                    "family": family,
                    "benchmark": benchmark,
                    "base_mean": base,
                    "reasoning_mean": base + delta,
                    "delta_mean": delta,
                    "delta_std": 0.0007,
                    "n_seeds": 3,
                }
            )
    return rows


def instruction_rows() -> list[dict]:
    """A made-up gathered instruction table (``results/mteb/instructions.csv``): one task per
    benchmark from an authors'-format file, BRIGHT per domain, one task on the fallback's task
    type. The instruction texts are invented, not anyone's published prompts."""
    authors = "https://example.org/prompts/task_prompts.json"
    rows = [
        (
            "MTEB(Multilingual, v2)",
            "ExampleClassification",
            "default",
            "Classification",
            "Sort the example text into its class",
            "authors_task",
            authors,
        ),
        (
            "MTEB(Multilingual, v2)",
            "ExampleSTS",
            "default",
            "STS",
            "Find example text that means the same",
            "project_task_type",
            "config/prompts.yaml",
        ),
        (
            "MTEB(Code, v1)",
            "ExampleCodeRetrieval",
            "python",
            "Retrieval",
            "Find the example code for a description",
            "authors_default",
            authors,
        ),
        (
            "BRIGHT",
            "BrightRetrieval",
            "biology",
            "Retrieval",
            "Find example passages for a biology question",
            "authors_bright",
            "https://example.org/prompts/bright.py",
        ),
        (
            "BRIGHT",
            "BrightRetrieval",
            "pony",
            "Retrieval",
            "Find example passages for a pony question",
            "authors_bright",
            "https://example.org/prompts/bright.py",
        ),
    ]
    return [
        {
            "benchmark": bench,
            "task": task,
            "subset": subset,
            "task_type": task_type,
            "instruction": text,
            "source": source,
            "origin": origin,
            "sha256": hashlib.sha256(origin.encode()).hexdigest(),
            "template": "Instruct: {instruction}\nQuery: ",
            "document_instruction": "",
            "note": "",
            "n_runs": 1,
            "runs": "example/emb/seed0",
        }
        for bench, task, subset, task_type, text, source, origin in rows
    ]


def training_data_reports(scale: float = 0.01, seed: int = 0) -> tuple[dict, dict]:
    """Made-up reports of the contrastive_data and mine_negatives rules (Table 7's inputs), for
    the 11 Table 7 sets at ``scale``: annotated sets kept, pair sets mined with a few drops."""
    from hrsa.data.contrastive import REGISTRY

    sets, sources = {}, {}
    for i, (key, entry) in enumerate(REGISTRY.items()):
        requested = max(1, round(entry.n_paper * scale))
        sets[key] = {
            "name": entry.name,
            "n_paper": entry.n_paper,
            "origin": entry.hub.describe(),
            "verified": entry.verified,
            "annotated_negatives": entry.annotated_negatives,
            "requested": requested,
            "available": requested * 2,
            "used": requested,
            "shortfall": 0,
            "with_negatives": requested if entry.annotated_negatives else 0,
        }
        dropped = 0 if entry.annotated_negatives else 1 + i % 3
        sources[key] = {
            "examples": requested,
            "kept_annotated": requested if entry.annotated_negatives else 0,
            "mined_rows": 0 if entry.annotated_negatives else requested - dropped,
            "mined_negatives": 0 if entry.annotated_negatives else 3 * (requested - dropped),
            "dropped": dropped,
            "written": requested - dropped,
            "policy": "kept" if entry.annotated_negatives else "mined",
        }
    data = {"source": "hub", "seed": seed, "rows": "table7", "scale": scale, "sets": sets}
    return data, {"num_negatives": 3, "relative_margin": 0.05, "sources": sources}


def _write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(rows)


def write_example_results(
    root: str | os.PathLike,
    pairs: Sequence[str] = ("sft", "prorl", "zoo"),
    datasets: Sequence[str] = ("cot", "mmlu_pro"),
    labelled: Sequence[str] = ("ag_news",),
    steps: Sequence[int] = (0, 50, 100, 200),
    n_layers: int = 6,
    table1: bool = True,
) -> Path:
    """Write the example tree under ``root`` (``root/results/...``); return ``root``.

    Stages: ``backbone`` and ``emb`` on every dataset, ``step{N}`` on the first dataset only;
    probe files on the ``labelled`` datasets (which get metrics too).
    """
    root = Path(root)
    columns = ["metric", "layer_base", "layer_reason", "k", "value", "ci_low", "ci_high"]
    for pair in pairs:
        for dataset in [*datasets, *labelled]:
            stages = ["backbone", "emb"]
            if dataset == datasets[0]:
                stages += [f"step{n}" for n in steps]
            for stage in stages:
                folder = root / "results" / "hrsa" / pair / stage / dataset
                _write_csv(folder / "metrics.csv", metrics_rows(pair, stage, n_layers), columns)
                folder.joinpath("summary.json").write_text(
                    json.dumps(summary(pair, stage, dataset, n_layers), indent=1)
                )
                if dataset in labelled:
                    _write_csv(
                        folder / "probe.csv",
                        probe_rows(pair, stage),
                        list(probe_rows(pair, stage)[0]),
                    )
    if table1:
        rows = [r for r in table1_rows() if r["pair"] in pairs]
        _write_csv(root / "results" / "mteb" / "table1.csv", rows, list(rows[0]))
        rows = instruction_rows()
        _write_csv(root / "results" / "mteb" / "instructions.csv", rows, list(rows[0]))
    train = root / "results" / "data" / "train"
    train.mkdir(parents=True, exist_ok=True)
    data, mining = training_data_reports()
    train.joinpath("contrastive.jsonl.report.json").write_text(json.dumps(data, indent=1))
    train.joinpath("mined.jsonl.report.json").write_text(json.dumps(mining, indent=1))
    config = {
        "models": EXAMPLE_CONFIG["models"],
        "pairs": {k: v for k, v in EXAMPLE_CONFIG["pairs"].items() if k in pairs},
    }
    root.joinpath("config.json").write_text(json.dumps(config, indent=1))
    return root


if __name__ == "__main__":  # pragma: no cover
    print(write_example_results(sys.argv[1] if len(sys.argv) > 1 else "report-example"))
