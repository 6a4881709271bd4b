"""Hard-negative mining as the authors' mine_hard_neg.py: annotated sets kept, pairs mined with
plain queries against the set's positives, positive-aware margin; cached per mining model."""

import json
import math

import pytest

from hrsa.data.contrastive import (
    ContrastiveExample,
    read_examples,
    synthetic_examples,
    write_examples,
)
from hrsa.errors import ConfigError
from hrsa.mining import load_mining_model, mine_file, mine_negatives


@pytest.fixture(scope="module")
def model(tiny_models):
    return load_mining_model(str(tiny_models["base"]), device="cpu", max_length=64)


@pytest.fixture
def spy(monkeypatch):
    """Records the arguments of every sentence-transformers mining call."""
    import sentence_transformers.util as st_util

    calls = []
    real = st_util.mine_hard_negatives

    def wrapper(dataset, model, **kwargs):
        calls.append({"queries": list(dataset["query"]), **kwargs})
        return real(dataset, model, **kwargs)

    monkeypatch.setattr(st_util, "mine_hard_negatives", wrapper)
    return calls


def test_annotated_sets_kept_pairs_mined_without_prompt_from_positives(model, spy, tmp_path):
    examples = synthetic_examples(16, seed=2, declared_negatives=True)
    mined, report = mine_negatives(
        examples, model, num_negatives=3, relative_margin=0.0, cache_dir=tmp_path / "cache"
    )
    by_source = {}
    for ex in examples:
        by_source.setdefault(ex.source, []).append(ex)
    kept = {(e.query, e.positive): e for e in mined}
    for source in ("synthetic_arithmetic", "synthetic_paraphrase"):  # annotated: untouched
        assert all(kept[(e.query, e.positive)] == e for e in by_source[source])
        assert report["sources"][source]["policy"] == "kept"
        assert report["sources"][source]["kept_annotated"] == 16
    for source in ("synthetic_search", "synthetic_claims"):  # pairs: mined from the positives
        positives = {e.positive for e in by_source[source]}
        rows = [e for e in mined if e.source == source]
        assert rows and all(set(e.negatives) <= positives - {e.positive} for e in rows)
        counts = report["sources"][source]
        assert counts["policy"] == "mined" and counts["kept_annotated"] == 0
        assert counts["written"] == len(rows) == 16 - counts["dropped"]
        assert counts["mined_rows"] == len(rows)
    # one call per mined set, none for the annotated ones; no prompt; the pool = the positives
    assert len(spy) == 2
    for call in spy:
        assert call["query_prompt"] is None and call.get("query_prompt_name") is None
        assert call["sampling_strategy"] == "top" and call["num_negatives"] == 3
        source = next(s for s, rows in by_source.items() if rows[0].query in call["queries"])
        assert call["corpus"] == list(dict.fromkeys(e.positive for e in by_source[source]))
        assert call["range_max"] == max(3, min(100, math.ceil(0.1 * 16)))
    assert any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("margin", [0.0, 0.05])
def test_mined_negatives_respect_the_margin_without_instruction(model, margin):
    pairs = synthetic_examples(
        24, seed=2, sources=["synthetic_search", "synthetic_claims"], declared_negatives=True
    )
    annotated = synthetic_examples(4, seed=2, sources=["synthetic_arithmetic"])
    mined, report = mine_negatives(
        pairs + annotated, model, num_negatives=3, relative_margin=margin
    )
    checked = 0
    for ex in mined:
        if ex.source == "synthetic_arithmetic":
            continue
        assert ex.positive not in ex.negatives
        q = model.encode([ex.query], convert_to_tensor=True)  # no prompt, as mined
        docs = model.encode([ex.positive, *ex.negatives], convert_to_tensor=True)
        sims = (q @ docs.T)[0]
        pos = float(sims[0])
        assert all(float(s) <= pos - abs(pos) * margin + 1e-5 for s in sims[1:])
        checked += 1
    mined_total = sum(c["mined_negatives"] for c in report["sources"].values())
    assert mined_total == sum(len(e.negatives) for e in mined if e.source != "synthetic_arithmetic")
    if margin == 0.0:
        assert checked > 0 and mined_total > 0


def test_shortfall_is_topped_up_after_the_annotated_negatives(model):
    pairs = synthetic_examples(30, seed=4, sources=["synthetic_search"], declared_negatives=True)
    first, _ = mine_negatives(pairs, model, num_negatives=3, relative_margin=0.0)
    target = next(e for e in first if len(e.negatives) >= 2)
    own = "an annotated negative passage"
    examples = [
        ContrastiveExample(e.query, e.positive, (own,), e.instruction, e.source)
        if e.query == target.query
        else e
        for e in pairs
    ]
    mined, report = mine_negatives(examples, model, num_negatives=3, relative_margin=0.0)
    got = next(e for e in mined if e.query == target.query)
    assert got.negatives == (own, *target.negatives[:2])  # own first, then only the shortfall
    assert report["sources"]["synthetic_search"]["topped_up"] == 1
    assert report["sources"]["synthetic_search"]["policy"] == "mixed"


def test_rows_left_without_negatives_are_dropped_and_counted(model):
    annotated = synthetic_examples(4, seed=0, sources=["synthetic_arithmetic"])
    same = [ContrastiveExample(f"q{i}", "one passage", (), "i", "pairs") for i in range(3)]
    mined, report = mine_negatives(annotated + same, model, num_negatives=3)
    assert [e.source for e in mined] == ["synthetic_arithmetic"] * 4
    assert report["sources"]["pairs"]["dropped"] == 3 and report["sources"]["pairs"]["written"] == 0


def test_mine_file_writes_data_and_report(tiny_models, tmp_path):
    data = tmp_path / "train.jsonl"
    write_examples(synthetic_examples(12, seed=0, declared_negatives=True), data)
    out = tmp_path / "mined.jsonl"
    report = mine_file(
        data,
        out,
        model=str(tiny_models["base"]),
        cache_dir=tmp_path / "cache",
        device="cpu",
        max_length=64,
        relative_margin=0.05,
    )
    assert report["written"] == len(read_examples(out))
    saved = json.loads((tmp_path / "mined.jsonl.report.json").read_text())
    assert saved["relative_margin"] == 0.05 and saved["query_prompt"] is None
    assert saved["sources"]["synthetic_arithmetic"]["policy"] == "kept"
    assert saved["sources"]["synthetic_search"]["policy"] == "mined"
    with pytest.raises(ConfigError, match=r"config key training\.mining\.num_negatives: must be"):
        mine_negatives(read_examples(out), None, num_negatives=0)


def test_fully_annotated_data_needs_no_mining_model(tmp_path):
    data = tmp_path / "train.jsonl"
    examples = synthetic_examples(6, seed=0, sources=["synthetic_paraphrase"])
    write_examples(examples, data)
    report = mine_file(data, tmp_path / "mined.jsonl", model=str(tmp_path / "no-such-model"))
    assert read_examples(tmp_path / "mined.jsonl") == examples
    assert report["sources"]["synthetic_paraphrase"]["policy"] == "kept"
