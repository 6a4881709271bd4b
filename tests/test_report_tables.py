"""hrsa.report.tables: Tables 1, 3, 4, 12, 13 from hand-made headline numbers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hrsa.report import collect, tables
from hrsa.report.output import atomic_path

PAIRS = collect.pairs_from_config(
    {
        "rl": {"base": "ds", "reasoning": "pro", "family": "RLVR", "label": "DS vs ProRL"},
        "sft": {"base": "qw", "reasoning": "ds", "family": "SFT", "label": "Qwen2.5 vs DS"},
    },
    {"ds": {"label": "DS-1.5B"}, "pro": {"label": "ProRL-1.5B"}, "qw": {"label": "Qwen-Math"}},
)


def headlines(rows):
    """rows: (pair, stage, dataset, quantity, k, value, ci_low, ci_high)."""
    frame = pd.DataFrame(rows, columns=collect.HEADLINE_COLUMNS)
    frame["k"] = frame["k"].astype("Int64")
    return frame


H = headlines(
    [
        ("rl", "backbone", "cot", "h_inv_final", None, 0.161, 0.15, 0.17),
        ("rl", "emb", "cot", "h_inv_final", None, 0.863, math.nan, math.nan),
        ("sft", "backbone", "cot", "h_inv_final", None, 0.108, 0.1, 0.11),
        ("sft", "emb", "cot", "h_inv_final", None, 0.142, 0.13, 0.15),
        ("rl", "backbone", "mmlu", "h_inv_final", None, 0.8336, 0.83, 0.84),
        ("sft", "backbone", "mmlu", "h_inv_final", None, 0.2229, 0.22, 0.23),
        ("rl", "backbone", "cot", "knn_overlap_mean", 5, 0.455, 0.45, 0.46),
        ("rl", "backbone", "cot", "knn_overlap_mean", 10, 0.484, math.nan, math.nan),
        ("rl", "backbone", "cot", "knn_overlap_mean", 50, 0.577, 0.57, 0.58),
        ("sft", "backbone", "cot", "knn_overlap_mean", 5, 0.052, 0.05, 0.054),
        ("sft", "backbone", "cot", "knn_overlap_mean", 10, 0.068, 0.06, 0.07),
        ("sft", "backbone", "cot", "knn_overlap_mean", 50, 0.132, 0.13, 0.14),
        ("rl", "backbone", "cot", "knn_overlap_mean_transformer_layers", 5, 0.43, 0.42, 0.44),
        ("rl", "backbone", "cot", "knn_overlap_mean_transformer_layers", 10, 0.46, 0.45, 0.47),
        ("rl", "backbone", "cot", "knn_overlap_mean_transformer_layers", 50, 0.56, 0.55, 0.57),
    ]
)


def test_format_interval():
    assert tables.format_interval(0.1076, 0.1, 0.11, 3) == "0.108 [0.100, 0.110]"
    assert tables.format_interval(0.1076, math.nan, math.nan, 4) == "0.1076"
    assert tables.format_interval(math.nan, 0.1, 0.2) == "–"


def test_markdown_table_escapes_pipes_and_aligns():
    text = tables.markdown_table(["a", "b"], [["x|y", "1"]])
    assert text.splitlines() == ["| a | b |", "| :--- | ---: |", "| x\\|y | 1 |"]


def test_table3_rows_in_paper_order_with_values():
    table = tables.table3(H, PAIRS, dataset="cot")
    frame = table.frame
    assert frame[["pair", "stage"]].values.tolist() == [
        ["sft", "backbone"],
        ["sft", "emb"],
        ["rl", "backbone"],
        ["rl", "emb"],
    ]
    assert frame.loc[2, "h_inv"] == 0.161 and frame.loc[2, "h_inv_ci_high"] == 0.17
    assert frame.loc[3, "model_pair"] == "DS-Emb vs ProRL-Emb"
    lines = table.markdown.splitlines()
    assert lines[0] == "| Model pair | Inverse row entropy ↑ |"
    assert lines[2] == "| SFT: Qwen2.5 vs DS | 0.108 [0.100, 0.110] |"
    assert lines[5] == "| → DS-Emb vs ProRL-Emb | 0.863 |"  # no interval: none computed


def test_table4_one_column_per_k_and_layer_range():
    table = tables.table4(H, PAIRS, dataset="cot", stages=("backbone",))
    assert table.frame["pair"].tolist() == ["sft", "rl"]
    row = table.frame.set_index("pair").loc["rl"]
    assert row["knn_overlap_k5"] == 0.455 and row["knn_overlap_k50_ci_low"] == 0.57
    assert math.isnan(row["knn_overlap_k10_ci_low"])
    assert row["knn_overlap_transformer_k10"] == 0.46
    assert row["knn_overlap_transformer_k50_ci_high"] == 0.57
    assert math.isnan(table.frame.set_index("pair").loc["sft", "knn_overlap_transformer_k5"])
    lines = table.markdown.splitlines()
    assert lines[0] == (
        "| Model pairs | k=5, layers 0..L | k=10, layers 0..L | k=50, layers 0..L "
        "| k=5, layers 1..L | k=10, layers 1..L | k=50, layers 1..L |"
    )
    assert lines[3] == (
        "| RLVR: DS vs ProRL | 0.455 [0.450, 0.460] | 0.484 | 0.577 [0.570, 0.580] "
        "| 0.430 [0.420, 0.440] | 0.460 [0.450, 0.470] | 0.560 [0.550, 0.570] |"
    )
    assert lines[2].endswith("| – | – | – |")  # no transformer-layer means: shown as missing
    assert "the authors' code takes the first k of a top-50 list" in table.markdown


def test_h_inv_across_datasets_columns_are_datasets():
    table = tables.h_inv_across_datasets(
        H, PAIRS, stage="backbone", datasets=["cot", "mmlu"], dataset_labels={"cot": "CoT"}
    )
    frame = table.frame.set_index("pair")
    assert frame.loc["sft", "mmlu"] == 0.2229 and frame.loc["rl", "cot"] == 0.161
    assert frame.loc["rl", "model_pair"] == "DS-1.5B vs ProRL-1.5B"
    assert table.title.startswith("Table 12")
    lines = table.markdown.splitlines()
    assert lines[0] == "| Family | Model pair | CoT ↑ | mmlu ↑ |"
    assert (
        lines[2]
        == "| SFT | Qwen-Math vs DS-1.5B | 0.1080 [0.1000, 0.1100] | 0.2229 [0.2200, 0.2300] |"
    )
    emb = tables.h_inv_across_datasets(H, PAIRS, stage="emb", datasets=["cot", "mmlu"])
    assert emb.title.startswith("Table 13") and emb.frame["mmlu"].isna().all()


def test_table1_scales_fractions_and_keeps_csv_numbers():
    frame = pd.DataFrame(
        [
            ("rl", "RLVR", "MTEB(Code, v1)", 0.5898, 0.5872, -0.0026, 0.0008, 3),
            ("sft", "SFT", "MTEB(Code, v1)", 0.5529, 0.5628, 0.0099, 0.0005, 3),
            ("sft", "SFT", "BRIGHT", 0.1306, 0.1371, 0.0065, 0.0006, 3),
        ],
        columns=collect.TABLE1_COLUMNS,
    )
    table = tables.table1(frame, PAIRS)
    assert table.frame.loc[0, "base_mean"] == 0.5898  # CSV keeps the evaluation's numbers
    assert table.frame.loc[0, "model_pair"] == "DS-Emb vs ProRL-Emb"
    lines = table.markdown.splitlines()
    assert lines[0].startswith("| Family | Model pair | Algorithm | MTEB(Code, v1) base-Emb |")
    assert (
        lines[2]
        == "| SFT | Qwen2.5-Emb vs DS-Emb | SFT | 55.29 | 56.28 | +0.99 ± 0.05 | 13.06 | 13.71 | +0.65 ± 0.06 |"
    )
    assert (
        lines[3]
        == "| RLVR | DS-Emb vs ProRL-Emb | RLVR | 58.98 | 58.72 | -0.26 ± 0.08 | – | – | – |"
    )
    assert "Scores x100" in table.markdown and "3 seed(s)" in table.markdown


def test_table_write_is_atomic_and_complete(tmp_path):
    table = tables.table3(H, PAIRS, dataset="cot")
    table.write(tmp_path / "out/table3.csv", tmp_path / "out/table3.md")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table3.csv", "table3.md"]
    again = pd.read_csv(tmp_path / "out/table3.csv")
    assert again["h_inv"].tolist() == pytest.approx([0.108, 0.142, 0.161, 0.863])
    assert (tmp_path / "out/table3.md").read_text().startswith("# Table 3")


def test_atomic_path_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def table1_frame(published: dict[str, tuple[str, str]]):
    """Table 1 rows of pairs rl and sft; ``published[pair]``: (base_embedding, reasoning_embedding)."""
    rows = [
        ("rl", "RLVR", "BRIGHT", 0.20, 0.21, 0.01, 0.001, 3),
        ("sft", "SFT", "BRIGHT", 0.10, 0.12, 0.02, 0.002, 3),
    ]
    frame = pd.DataFrame(rows, columns=collect.TABLE1_COLUMNS)
    for role, i in (("base_embedding", 0), ("reasoning_embedding", 1)):
        frame[role] = [published.get(p, ("trained", "trained"))[i] for p in frame["pair"]]
    return frame


MODELS = {
    "ds": {"label": "DS-1.5B", "embedding_source": {"source": "hub/ds-emb", "revision": "r1"}},
    "pro": {"label": "ProRL-1.5B"},
    "qw": {"label": "Qwen-Math"},
}


def test_table1_marks_pairs_with_a_published_checkpoint():
    frame = table1_frame({"rl": ("published", "trained")})
    table = tables.table1(frame, PAIRS, models=MODELS)
    lines = table.markdown.splitlines()
    assert lines[2].startswith("| SFT | Qwen2.5-Emb vs DS-Emb | SFT |")  # trained: no mark
    assert lines[3].startswith("| RLVR | DS-Emb vs ProRL-Emb † | RLVR | 20.00 |")
    assert lines[-1] == (
        "† published checkpoint (not trained by this run; evaluated once, its score stands for "
        "every seed): DS-Emb vs ProRL-Emb: DS-1.5B-Emb = `hub/ds-emb`."
    )
    assert table.markdown.count("†") == 2
    # the CSV is the same as without published checkpoints: no mark in it
    plain = tables.table1(table1_frame({}), PAIRS, models=MODELS)
    assert table.frame.drop(columns=collect.TABLE1_EMBEDDING_COLUMNS).equals(
        plain.frame.drop(columns=collect.TABLE1_EMBEDDING_COLUMNS)
    )
    assert table.frame.loc[0, "model_pair"] == "DS-Emb vs ProRL-Emb"


def test_table1_lists_every_published_member_and_unknown_sources():
    frame = table1_frame({"rl": ("published", "published"), "sft": ("trained", "published")})
    markdown = tables.table1(frame, PAIRS, models=MODELS).markdown
    assert "| SFT | Qwen2.5-Emb vs DS-Emb † |" in markdown
    assert "| RLVR | DS-Emb vs ProRL-Emb † |" in markdown
    # pairs in the evaluation's order; a member without a configured source shows ?
    assert markdown.endswith(
        "every seed): DS-Emb vs ProRL-Emb: DS-1.5B-Emb = `hub/ds-emb`, ProRL-1.5B-Emb = `?`; "
        "Qwen2.5-Emb vs DS-Emb: DS-1.5B-Emb = `hub/ds-emb`.\n"
    )


def test_table1_marks_the_published_pairs_row_even_with_a_shared_name():
    # two pairs with the same display name: the mark goes to the published one's row
    pairs = collect.pairs_from_config(
        {
            "rl": {"base": "ds", "reasoning": "pro", "family": "RLVR", "label": "A vs B"},
            "rl2": {"base": "qw", "reasoning": "ds", "family": "RLVR", "label": "A vs B"},
        },
        MODELS,
    )
    frame = table1_frame({"sft": ("trained", "published")})
    frame["pair"] = frame["pair"].replace({"sft": "rl2"})
    lines = tables.table1(frame, pairs, models=MODELS).markdown.splitlines()
    assert lines[2].startswith("| RLVR | A-Emb vs B-Emb | RLVR |")
    assert lines[3].startswith("| RLVR | A-Emb vs B-Emb † | RLVR |")


def test_table1_adds_nothing_when_nothing_is_published(tmp_path):
    frame = table1_frame({"rl": ("trained", "trained"), "sft": ("backbone", "backbone")})
    table = tables.table1(frame, PAIRS, models=MODELS)
    bare = tables.table1(frame[collect.TABLE1_COLUMNS], PAIRS)  # no embedding columns at all
    assert table.markdown == bare.markdown
    assert "†" not in table.markdown and "published" not in table.markdown
    assert table.markdown.endswith("Mean over 3 seed(s); Δ = reason-Emb − base-Emb.\n")
    table.write(tmp_path / "t.csv", tmp_path / "t.md")
    marked = tables.table1(table1_frame({"rl": ("published", "trained")}), PAIRS, models=MODELS)
    marked.write(tmp_path / "m.csv")
    # CSVs differ only in the embedding columns' values
    a, b = (pd.read_csv(tmp_path / f) for f in ("t.csv", "m.csv"))
    assert list(a.columns) == list(b.columns)
    assert a.drop(columns=collect.TABLE1_EMBEDDING_COLUMNS).equals(
        b.drop(columns=collect.TABLE1_EMBEDDING_COLUMNS)
    )
