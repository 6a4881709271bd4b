"""Probe datasets: generators, filters, local overrides and errors."""

import json

import pandas as pd
import pytest

from hrsa.data import synthetic
from hrsa.data.probe import REGISTRY, load_probe_dataset, write_jsonl
from hrsa.errors import ConfigError, DataError


def test_generators_are_deterministic_and_seeded():
    for gen in synthetic.GENERATORS.values():
        assert gen(20, 1) == gen(20, 1)
        assert gen(20, 1) != gen(20, 2)


def test_arithmetic_traces_are_correct_exactly_when_labelled_correct():
    for rec in synthetic.arithmetic_traces(60, 0):
        steps_ok = True
        for step in rec["text"].split("Step ")[1:]:
            lhs, rhs = step.split(":", 1)[1].split("=")
            steps_ok &= eval(lhs) == int(rhs.strip().rstrip(".").split(".")[0])  # noqa: S307
        assert steps_ok == (rec["correctness_label"] == 1)


def test_topic_sentences_are_balanced_over_four_labels():
    labels = [r["label"] for r in synthetic.topic_sentences(200, 0)]
    assert sorted(set(labels)) == [0, 1, 2, 3]
    assert all(labels.count(k) == 50 for k in range(4))


def test_filters_keep_only_correct_hard_traces():
    recs = load_probe_dataset(
        "cot",
        {
            "generator": "arithmetic_traces",
            "n": 90,
            "filters": {"correctness_label": 1, "tier": "hard"},
        },
    )
    raw = {r["id"]: r for r in synthetic.arithmetic_traces(90, 0)}
    assert recs and all(
        raw[r["id"]]["tier"] == "hard" and raw[r["id"]]["correctness_label"] == 1 for r in recs
    )
    assert set(recs[0]) == {"id", "text", "label"}


def test_local_jsonl_and_parquet_overrides(tmp_path):
    rows = [{"qid": i, "body": f"text {i}", "y": i % 2} for i in range(5)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.parquet"):
        spec = {
            "local": str(tmp_path / name),
            "text_field": "body",
            "label_field": "y",
            "id_field": "qid",
            "filters": {"y": 1},
        }
        recs = load_probe_dataset("x", spec)
        assert [r["id"] for r in recs] == ["1", "3"] and all(r["label"] == 1 for r in recs)


def test_empty_and_malformed_datasets_are_clear_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_probe_dataset("e", {"local": str(tmp_path / "empty.jsonl")})
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        load_probe_dataset("b", {"local": str(tmp_path / "bad.jsonl")})
    with pytest.raises(DataError, match="not found"):
        load_probe_dataset("m", {"local": str(tmp_path / "missing.jsonl")})
    with pytest.raises(DataError, match="filter field 'nope'"):
        load_probe_dataset("f", {"generator": "multiple_choice", "n": 5, "filters": {"nope": 1}})
    with pytest.raises(ConfigError, match="unknown 'wat'"):
        load_probe_dataset("g", {"generator": "wat"})


def test_registry_has_the_papers_datasets_with_labels_where_needed():
    assert {"cot", "mmlu_pro", "ag_news"} <= set(REGISTRY)
    assert REGISTRY["ag_news"].label_field == "label"
    assert REGISTRY["cot"].filters["correctness_label"] == 1


def test_write_jsonl_is_atomic_and_roundtrips(tmp_path):
    recs = load_probe_dataset("t", {"generator": "topic_sentences", "n": 8})
    write_jsonl(recs, tmp_path / "out" / "t.jsonl")
    back = [json.loads(line) for line in (tmp_path / "out" / "t.jsonl").read_text().splitlines()]
    assert back == recs
    assert not list((tmp_path / "out").glob(".*tmp"))
