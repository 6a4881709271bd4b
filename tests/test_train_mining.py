"""Positive-aware hard-negative mining with sentence-transformers, cached per mining model."""

import json

import pytest

from hrsa.data.contrastive import read_examples, synthetic_examples, write_examples
from hrsa.errors import ConfigError
from hrsa.mining import load_mining_model, mine_file, mine_negatives


@pytest.mark.parametrize("margin", [0.0, 0.05])
def test_mined_negatives_respect_the_margin(tiny_models, tmp_path, margin):
    examples = [
        e
        for e in synthetic_examples(16, seed=2)
        if e.source in ("synthetic_search", "synthetic_claims")
    ]
    model = load_mining_model(str(tiny_models["base"]), device="cpu", max_length=64)
    mined, report = mine_negatives(
        examples, model, num_negatives=3, relative_margin=margin, cache_dir=tmp_path / "cache"
    )
    assert set(report["sources"]) == {"synthetic_search", "synthetic_claims"}
    assert all(len(e.negatives) == 3 and e.positive not in e.negatives for e in mined)
    originals = {(e.query, e.positive): set(e.negatives) for e in examples}
    checked = 0
    for ex in mined:
        new = [n for n in ex.negatives if n not in originals[(ex.query, ex.positive)]]
        if not new:
            continue
        prompt = f"Instruct: {ex.instruction}\nQuery: "
        q = model.encode([ex.query], prompt=prompt, convert_to_tensor=True)
        docs = model.encode([ex.positive, *new], convert_to_tensor=True)
        sims = (q @ docs.T)[0]
        pos = float(sims[0])
        assert all(float(s) <= pos - abs(pos) * margin + 1e-5 for s in sims[1:])
        checked += 1
    if margin == 0.0:
        assert checked > 0 and sum(s["mined_negatives"] for s in report["sources"].values()) > 0
    assert any((tmp_path / "cache").iterdir())


def test_mine_file_writes_data_and_report(tiny_models, tmp_path):
    data = tmp_path / "train.jsonl"
    write_examples(
        [e for e in synthetic_examples(12, seed=0) if e.source == "synthetic_search"], data
    )
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
    assert report["written"] == len(read_examples(out)) == 12
    assert json.loads((tmp_path / "mined.jsonl.report.json").read_text())["relative_margin"] == 0.05
    with pytest.raises(ConfigError, match="num_negatives"):
        mine_negatives(read_examples(out), None, num_negatives=0)
