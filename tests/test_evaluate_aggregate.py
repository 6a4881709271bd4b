"""Benchmark means, Table 1 arithmetic and the reporting of missing/partial results (no mteb)."""

import math

import pandas as pd
import pytest

from hrsa.evaluate import benchmark_slug
from hrsa.evaluate.aggregate import (
    TABLE1_COLUMNS,
    TABLE1_EMBEDDING_COLUMNS,
    ScoreFile,
    benchmark_score,
    read_scores,
    summarize,
    table1,
    write_table1,
)
from hrsa.evaluate.names import slugs_to_names

PAIRS = {
    "p-rl": {"base": "b", "reasoning": "r", "family": "RLVR", "label": "B vs R"},
    "p-sft": {"base": "b", "reasoning": "s", "family": "SFT", "label": "B vs S"},
}


def write_csv(path, rows, benchmark="Bench"):
    """rows: (task, task_type, subset, main_score)."""
    df = pd.DataFrame(
        [
            {
                "benchmark": benchmark,
                "task": t,
                "subset": s,
                "main_score": v,
                "task_type": tt,
                "split": "test",
                "status": "ok" if v is not None and not math.isnan(v) else "missing_subset",
            }
            for t, tt, s, v in rows
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def one_task(path, score, benchmark="Bench"):
    return write_csv(path, [("T", "Retrieval", "default", score)], benchmark)


def test_benchmark_slug_is_filesystem_safe():
    assert benchmark_slug("MTEB(Multilingual, v2)") == "MTEB_Multilingual_v2"
    assert benchmark_slug("MTEB(Code, v1)") == "MTEB_Code_v1"
    assert benchmark_slug("BRIGHT") == "BRIGHT"
    assert benchmark_slug("HRSA-Local") == "HRSA-Local"
    with pytest.raises(ValueError, match="same slug"):
        slugs_to_names(["A B", "A/B"])


def test_means_over_subsets_tasks_and_task_types(tmp_path):
    path = write_csv(
        tmp_path / "s.csv",
        [
            ("R", "Retrieval", "a", 0.2),
            ("R", "Retrieval", "b", 0.4),  # R = 0.3 (mean over its subsets)
            ("C", "Classification", "default", 0.8),
            ("S1", "STS", "default", 0.5),
            ("S2", "STS", "default", 0.7),  # STS type = 0.6
        ],
    )
    score = benchmark_score(read_scores(path))
    assert score["complete"] and score["n_tasks"] == 4
    assert score["mean_task"] == pytest.approx((0.3 + 0.8 + 0.5 + 0.7) / 4)
    assert score["mean_task_type"] == pytest.approx((0.3 + 0.8 + 0.6) / 3)


def test_table1_delta_mean_and_std_over_seeds(tmp_path):
    base, reason = [0.50, 0.52, 0.54], [0.51, 0.52, 0.57]
    files = []
    for seed in range(3):
        for model, scores in (("b", base), ("r", reason)):
            path = one_task(tmp_path / f"{model}{seed}.csv", scores[seed])
            files.append(ScoreFile(model, "emb", seed, "Bench", path))
    table, problems = table1(summarize(files), {"p-rl": PAIRS["p-rl"]}, ["Bench"])
    row = table.iloc[0]
    deltas = [0.01, 0.0, 0.03]
    assert problems == []
    assert row["base_mean"] == pytest.approx(0.52)
    assert row["reasoning_mean"] == pytest.approx(1.6 / 3)
    assert row["delta_mean"] == pytest.approx(0.04 / 3)
    assert row["delta_std"] == pytest.approx(pd.Series(deltas).std(ddof=1))
    assert row["delta_std"] == pytest.approx(0.01527525, abs=1e-8)  # sample std (ddof=1)
    assert row["n_seeds"] == 3


def test_one_seed_has_no_std(tmp_path):
    files = [
        ScoreFile("b", "emb", 0, "Bench", one_task(tmp_path / "b.csv", 0.4)),
        ScoreFile("r", "emb", 0, "Bench", one_task(tmp_path / "r.csv", 0.5)),
    ]
    table, _ = table1(summarize(files), {"p-rl": PAIRS["p-rl"]}, ["Bench"])
    assert table.iloc[0]["delta_mean"] == pytest.approx(0.1)
    assert math.isnan(table.iloc[0]["delta_std"]) and table.iloc[0]["n_seeds"] == 1


def test_missing_file_is_reported_and_its_seed_left_out(tmp_path):
    files = []
    for seed, (b, r) in enumerate([(0.5, 0.6), (0.5, 0.7), (0.5, 0.9)]):
        files.append(ScoreFile("b", "emb", seed, "Bench", one_task(tmp_path / f"b{seed}.csv", b)))
        path = tmp_path / f"r{seed}.csv"
        if seed != 2:
            one_task(path, r)
        files.append(ScoreFile("r", "emb", seed, "Bench", path))
    summary = summarize(files)
    missing = summary[(summary["model"] == "r") & (summary["seed"] == 2)].iloc[0]
    assert not missing["complete"] and "missing file" in missing["problem"]
    table, problems = table1(summary, {"p-rl": PAIRS["p-rl"]}, ["Bench"])
    row = table.iloc[0]
    assert row["n_seeds"] == 2
    assert row["delta_mean"] == pytest.approx(0.15)  # seeds 0 and 1 only, not the 0.9
    assert len(problems) == 1 and "seed 2" in problems[0] and "missing file" in problems[0]


def test_partial_files_are_reported_not_averaged(tmp_path):
    full = [("A", "STS", "default", 0.5), ("B", "STS", "default", 0.7)]
    files = [
        ScoreFile("b", "emb", 0, "Bench", write_csv(tmp_path / "b.csv", full)),
        # lacks task B altogether: partial, although every row it has is fine
        ScoreFile("r", "emb", 0, "Bench", write_csv(tmp_path / "r.csv", full[:1])),
        # has a row for B, without a score
        ScoreFile(
            "s",
            "emb",
            0,
            "Bench",
            write_csv(tmp_path / "s.csv", [full[0], ("B", "STS", "default", math.nan)]),
        ),
    ]
    summary = summarize(files).set_index("model")
    assert summary.loc["b", "complete"] and summary.loc["b", "mean_task"] == pytest.approx(0.6)
    assert not summary.loc["r", "complete"] and "partial" in summary.loc["r", "problem"]
    assert "B/default" in summary.loc["r", "problem"]
    assert not summary.loc["s", "complete"] and "incomplete tasks: B" in summary.loc["s", "problem"]
    assert math.isnan(summary.loc["r", "mean_task"]) and math.isnan(summary.loc["s", "mean_task"])
    table, problems = table1(summary.reset_index(), PAIRS, ["Bench"])
    assert (table["n_seeds"] == 0).all() and table["delta_mean"].isna().all()
    assert len(problems) == 2


def test_write_table1_files(tmp_path):
    files = []
    for seed in (0, 1):
        for model, score in (("b", 0.5), ("r", 0.55), ("s", 0.3)):
            for bench in ("Bench", "Other"):
                path = one_task(tmp_path / f"{model}{seed}{bench}.csv", score + 0.01 * seed, bench)
                files.append(ScoreFile(model, "emb", seed, bench, path))
    backbone = one_task(tmp_path / "bb.csv", 0.1)
    files.append(ScoreFile("b", "backbone", 0, "Bench", backbone))
    out = {k: tmp_path / "out" / f"{k}" for k in ("t.csv", "t.md", "s.csv", "bb.csv")}
    table, problems = write_table1(
        files,
        pairs=PAIRS,
        benchmarks=["Bench", "Other"],
        table_csv=out["t.csv"],
        table_md=out["t.md"],
        summary_csv=out["s.csv"],
        backbone_csv=out["bb.csv"],
        labels={"b": "Base-LM", "r": "Reason-LM"},
    )
    written = pd.read_csv(out["t.csv"])
    assert list(written.columns) == TABLE1_COLUMNS + TABLE1_EMBEDDING_COLUMNS
    assert len(written) == 4 and set(written["base_embedding"]) == {"trained"}
    sft = written[(written["pair"] == "p-sft") & (written["benchmark"] == "Other")].iloc[0]
    assert sft["delta_mean"] == pytest.approx(-0.2) and sft["delta_std"] == pytest.approx(0.0)
    md = out["t.md"].read_text()
    assert md.index("B vs S") < md.index("B vs R")  # SFT first, as in the paper
    assert "Base-LM / Reason-LM" in md and "+5.00 ± 0.00" in md
    # the backbone reference: only b was evaluated, so every pair is reported incomplete
    assert "Reference: backbones" in md and "Left out" in md
    assert any(p.startswith("backbone:") for p in problems)
    assert list(pd.read_csv(out["bb.csv"]).columns) == TABLE1_COLUMNS + TABLE1_EMBEDDING_COLUMNS


def test_a_published_checkpoint_stands_for_every_seed(tmp_path):
    """A published model is evaluated once (first seed): Table 1 pairs its one score with every
    seed of its trained partner, marks it, and a pair of two published models has one seed."""
    files = []
    scores = {("b", 0): 0.5, ("r", 0): 0.6, ("r", 1): 0.8, ("s", 0): 0.4}
    for (model, seed), value in scores.items():
        path = tmp_path / f"{model}-{seed}.csv"
        write_csv(path, [("T", "Retrieval", "default", value)])
        files.append(ScoreFile(model, "emb", seed, "Bench", path))
    summary = summarize(files)
    pairs = {**PAIRS, "p-pub": {"base": "b", "reasoning": "s", "family": "RLVR"}}
    pairs["p-sft"] = {"base": "r", "reasoning": "s", "family": "SFT"}
    table, problems = table1(summary, pairs, ["Bench"], published=["b", "s"])
    rows = table.set_index("pair")
    assert problems == []
    rl = rows.loc["p-rl"]  # b published (seed 0 only) vs r trained (seeds 0, 1)
    assert rl["n_seeds"] == 2 and rl["base_mean"] == pytest.approx(0.5)
    assert rl["delta_mean"] == pytest.approx(0.2)
    assert rl["delta_std"] == pytest.approx(math.sqrt(0.02))
    assert (rl["base_embedding"], rl["reasoning_embedding"]) == ("published", "trained")
    sft = rows.loc["p-sft"]  # trained base, published reasoning
    assert sft["n_seeds"] == 2 and sft["reasoning_mean"] == pytest.approx(0.4)
    pub = rows.loc["p-pub"]  # both published: one seed, no spread
    assert pub["n_seeds"] == 1 and math.isnan(pub["delta_std"])
    assert pub["delta_mean"] == pytest.approx(-0.1)
    # without the marker the same results leave seed 1 out, as before
    _, problems = table1(summary, pairs, ["Bench"])
    assert any("seed 1 left out" in p for p in problems)
    out = tmp_path / "t.md"
    write_table1(
        files,
        pairs=pairs,
        benchmarks=["Bench"],
        table_csv=tmp_path / "t.csv",
        table_md=out,
        summary_csv=tmp_path / "s.csv",
        labels={"b": "Base-LM"},
        published={"b": "org/Base-Emb", "s": "/local/s"},
    )
    md = out.read_text()
    assert "Base-LM † / r" in md and "published checkpoint" in md and "`org/Base-Emb`" in md
    assert pd.read_csv(tmp_path / "t.csv")["base_embedding"].tolist()[0] in ("published", "trained")
