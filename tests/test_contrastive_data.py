"""Contrastive training data: schema, registry, offline generator, readers and their errors."""

import json

import pytest

from hrsa.data import contrastive as C
from hrsa.errors import ConfigError, DataError


def test_registry_matches_table7():
    assert len(C.REGISTRY) == 11
    assert sum(d.n_paper for d in C.REGISTRY.values()) == 1_603_172
    names = {d.name for d in C.REGISTRY.values()}
    assert {"FEVER", "MSMARCO", "NLI", "Mr.Tydi", "DUReader", "T2Ranking"} <= names
    for entry in C.REGISTRY.values():
        assert entry.instruction and entry.hub.path
        assert {"query", "positive"} <= set(entry.hub.columns)


def test_synthetic_is_deterministic_with_several_sources():
    a = C.synthetic_examples(16, seed=0)
    assert a == C.synthetic_examples(16, seed=0)
    assert a != C.synthetic_examples(16, seed=1)
    groups = C.group_by_source(a)
    assert sorted(groups) == sorted(C.SYNTHETIC_SOURCES) and len(groups) >= 3
    for source, rows in groups.items():
        assert len(rows) == 16
        assert len({r.query for r in rows}) == 16 and len({r.positive for r in rows}) == 16
        for r in rows:
            assert r.instruction == C.SYNTHETIC_INSTRUCTIONS[source]
            assert len(r.negatives) == 3 and r.positive not in r.negatives


def test_synthetic_negatives_are_near_misses():
    for r in C.synthetic_examples(8, seed=3):
        pos = set(r.positive.lower().strip(".").split())
        for neg in r.negatives:
            shared = pos & set(neg.lower().strip(".").split())
            assert shared, (r.source, r.positive, neg)


def test_roundtrip_jsonl_and_parquet(tmp_path):
    import pandas as pd

    examples = C.synthetic_examples(4, seed=0)
    path = tmp_path / "data.jsonl"
    assert C.write_examples(examples, path) == len(examples)
    assert C.read_examples(path) == examples
    pq = tmp_path / "data.parquet"
    pd.DataFrame([e.to_dict() for e in examples]).to_parquet(pq)
    assert C.read_examples(pq) == examples


@pytest.mark.parametrize(
    "record, expected",
    [
        (
            {"query": ["Find it", "q"], "pos": [["", "p"]], "neg": [["", "n1"], ["", "n2"]]},
            ("q", "p", ("n1", "n2"), "Find it"),
        ),
        (
            {"anchor": "q", "positive": "p", "negative_1": "n1", "negative_2": "n2"},
            ("q", "p", ("n1", "n2"), "default"),
        ),
        (["q", "p", "n1"], ("q", "p", ("n1",), "default")),
        ({"query": "q", "answer": "p"}, ("q", "p", (), "default")),
        ({"query": "q", "positive_passages": [{"title": "T", "text": "p"}]}, None),
    ],
)
def test_normalise_record_shapes(record, expected):
    if expected is None:  # hub column mapping (Mr.TyDi-style passages)
        ex = C.normalise_record(
            record,
            where="x",
            source="s",
            instruction="default",
            columns={"query": "query", "positive": "positive_passages"},
        )
        assert ex.positive == "T p"
        return
    ex = C.normalise_record(record, where="x", source="s", instruction="default")
    assert (ex.query, ex.positive, ex.negatives, ex.instruction) == expected
    assert ex.source == "s"


def test_errors_name_file_and_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl.*empty"):
        C.read_examples(empty)
    bad = tmp_path / "bad.jsonl"
    good = json.dumps(C.synthetic_examples(1)[0].to_dict())
    bad.write_text(good + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON"):
        C.read_examples(bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"query": "q", "source": "s"}) + "\n")
    with pytest.raises(DataError, match=r"missing.jsonl:1: missing 'positive'"):
        C.read_examples(missing)
    with pytest.raises(DataError, match="does not exist"):
        C.read_examples(tmp_path / "nope.jsonl")


def test_validate_requires_negatives():
    ex = [C.ContrastiveExample("q", "p", (), "i", "s")]
    C.validate_examples(ex, num_negatives=0)
    with pytest.raises(DataError, match="no negatives.*mine"):
        C.validate_examples(ex, num_negatives=3)


def test_local_files_override_registry(tmp_path):
    path = tmp_path / "msmarco.jsonl"
    path.write_text(
        "\n".join(json.dumps({"query": f"q{i}", "pos": [f"p{i}"], "neg": ["n"]}) for i in range(5))
    )
    out = C.build_training_data(
        source="local", sources=["msmarco"], files={"msmarco": str(path)}, rows=3
    )
    assert len(out) == 3
    assert all(
        e.source == "msmarco" and e.instruction == C.REGISTRY["msmarco"].instruction for e in out
    )
    with pytest.raises(ConfigError, match=r"no file for source\(s\) \['nli'\]"):
        C.build_training_data(source="local", sources=["nli"], files={})


def test_format_query():
    assert C.format_query("q", "Do it") == ("Instruct: Do it\nQuery: ", "q")
    assert C.format_query("q", "") == ("", "q")


def test_hub_source_offline_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to find
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="training dataset 'nli'.*(prefetch|data_mirror)"):
        C.load_hub("nli", limit=2)
    with pytest.raises(DataError, match="dureader.*data_mirror"):
        C.load_hub("dureader", limit=2)
    with pytest.raises(DataError, match="no local copy"):
        C.load_hub("nli", mirror=tmp_path / "empty-mirror")
    with pytest.raises(ConfigError, match="unknown training dataset"):
        C.load_hub("nope")
