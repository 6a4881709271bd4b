"""Activation stores of the paper's probe data: the probe dataset keeps every sequence, and
``max_length: null`` extracts whole sequences."""

import json

from hrsa.activations import ActivationStore, extract, extraction_settings
from hrsa.data import synthetic
from hrsa.data.probe import write_jsonl
from hrsa.models import load_backbone

CAPS = {
    "attention": "bidirectional",
    "gpus": 1,
    "batch_size": 8,
    "max_sequences": 5,
    "max_tokens": 60,
    "max_length": 256,
    "seed": 0,
}


def test_settings_drop_the_caps_only_for_the_datasets_that_keep_everything():
    probe_set = extraction_settings(CAPS, "ag_news", keep_all=["ag_news"])
    other = extraction_settings(CAPS, "cot", keep_all=["ag_news"])
    assert probe_set["max_sequences"] is None and probe_set["max_tokens"] is None
    assert other["max_sequences"] == 5 and other["max_tokens"] == 60
    for s in (probe_set, other):
        assert "attention" not in s and "gpus" not in s and s["max_length"] == 256


def test_probe_dataset_store_keeps_all_sequences_under_caps(tiny_models, tmp_path):
    records = [
        {"id": r["id"], "text": r["text"], "label": r["label"]}
        for r in synthetic.topic_sentences(30, 0)
    ]
    write_jsonl(records, tmp_path / "ag_news.jsonl")
    stores = {}
    for dataset, keep_all in (("ag_news", ["ag_news"]), ("capped", [])):
        settings = extraction_settings(CAPS, "ag_news", keep_all=keep_all)
        stores[dataset] = ActivationStore(
            extract(
                model=str(tiny_models["base"]),
                texts=tmp_path / "ag_news.jsonl",
                store=tmp_path / dataset,
                dataset_key="ag_news",
                device="cpu",
                **settings,
            )
        )
    full = stores["ag_news"]
    assert sorted(s["id"] for s in full.sequences) == sorted(r["id"] for r in records)
    assert len(stores["capped"].sequences) < 5 + 1 and stores["capped"].n_rows <= 60 + 40
    assert full.manifest["max_sequences"] is None and full.manifest["max_tokens"] is None


def test_max_length_none_means_no_truncation(tiny_models, tmp_path):
    _, tokenizer = load_backbone(str(tiny_models["base"]), device="cpu")
    # a long trace (a few hundred tokens) and a short one
    long_text = " ".join(r["text"] for r in synthetic.arithmetic_traces(12, 1))
    records = [{"id": "long", "text": long_text}, {"id": "short", "text": "Step 1: 2 + 3 = 5."}]
    write_jsonl(records, tmp_path / "cot.jsonl")
    n_long = len(tokenizer(long_text, add_special_tokens=False)["input_ids"])
    assert n_long > 300
    whole = ActivationStore(
        extract(
            model=str(tiny_models["base"]),
            texts=tmp_path / "cot.jsonl",
            store=tmp_path / "whole",
            device="cpu",
            max_length=None,
        )
    )
    cut = ActivationStore(
        extract(
            model=str(tiny_models["base"]),
            texts=tmp_path / "cot.jsonl",
            store=tmp_path / "cut",
            device="cpu",
            max_length=64,
        )
    )
    lengths = {s["id"]: s["n_tokens"] for s in whole.sequences}
    assert lengths["long"] == n_long
    assert {s["id"]: s["n_tokens"] for s in cut.sequences}["long"] == 64
    assert json.loads((tmp_path / "whole" / "manifest.json").read_text())["max_length"] is None
