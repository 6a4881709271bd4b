"""The paper's training data: Table 7 plan, seeded exact sampling, real-schema mirror copies."""

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
import yaml

from hrsa.data import contrastive as C
from hrsa.data import remote
from hrsa.data.training_fixtures import mirror_paths, write_training_mirror
from hrsa.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
# The paper's Table 7, typed in from the paper (not from the registry).
TABLE7 = {
    "fever": 105_893,
    "natural_questions": 97_912,
    "nli": 277_217,
    "msmarco": 499_184,
    "quora": 94_443,
    "mr_tydi": 102_796,
    "dureader": 17_493,
    "trivia_qa": 65_465,
    "hotpot_qa": 167_808,
    "squad": 84_494,
    "t2ranking": 90_467,
}


def _config(name):
    return yaml.safe_load((REPO / "config" / name).read_text())


def test_paper_config_plans_exactly_table7():
    plan = C.planned_rows(_config("paper.yaml")["training"]["data"])
    assert plan == TABLE7
    assert len(plan) == 11 and sum(plan.values()) == 1_603_172 == C.TABLE7_TOTAL


def test_default_config_plans_the_synthetic_sets():
    data = _config("config.yaml")["training"]["data"]
    assert C.planned_rows(data) == dict.fromkeys(C.SYNTHETIC_SOURCES, 64)
    pairs = [s for s, annotated in C.SYNTHETIC_ANNOTATED.items() if not annotated]
    assert C.planned_rows({**data, "rows": dict.fromkeys(pairs, 192)}) == {
        s: 192 if s in pairs else 64 for s in C.SYNTHETIC_SOURCES
    }


def test_plan_forms_and_errors():
    hub = {"source": "hub", "sources": ["nli", "dureader"]}
    assert C.planned_rows(hub) == {"nli": 277_217, "dureader": 17_493}
    assert C.planned_rows(hub | {"rows": 50}) == {"nli": 50, "dureader": 50}
    assert C.planned_rows(hub | {"rows": {"nli": 7}}) == {"nli": 7, "dureader": 17_493}
    assert C.planned_rows(hub | {"scale": 0.001}) == {"nli": 277, "dureader": 17}
    assert C.planned_rows(hub | {"scale": 1e-9}) == {"nli": 1, "dureader": 1}
    assert C.planned_rows({"source": "hub"}) == TABLE7  # all 11 by default
    assert C.planned_rows({"source": "synthetic", "n_per_source": 5, "scale": 2}) == dict.fromkeys(
        C.SYNTHETIC_SOURCES, 10
    )
    with pytest.raises(
        ConfigError,
        match=r"config key training\.data\.n_per_source: applies to source: synthetic only",
    ):
        C.planned_rows(hub | {"n_per_source": 64})  # the old silent 64 rows
    with pytest.raises(
        ConfigError,
        match=r"config key training\.data\.rows: names sources that are not used.*squad",
    ):
        C.planned_rows(hub | {"rows": {"squad": 3}})
    with pytest.raises(
        ConfigError, match=r"config key training\.data\.rows\.nli: must be an integer"
    ):
        C.planned_rows(hub | {"rows": {"nli": 0}})
    with pytest.raises(
        ConfigError, match=r"config key training\.data\.rows: table7 needs source hub or local"
    ):
        C.planned_rows({"source": "synthetic", "rows": "table7"})
    with pytest.raises(
        ConfigError, match=r"config key training\.data\.scale: must be a number > 0"
    ):
        C.planned_rows(hub | {"scale": 0})
    local = {"source": "local", "files": {"mine": "x.jsonl"}}
    with pytest.raises(ConfigError, match=r"'mine' is not in Table 7.*training.data.rows.mine"):
        C.planned_rows(local)
    assert C.planned_rows(local | {"rows": {"mine": 4}}) == {"mine": 4}
    with pytest.raises(ConfigError, match="neither Table 7 datasets"):
        C.planned_rows({"source": "hub", "sources": ["nope"]})


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("training-mirror")
    write_training_mirror(root, dict.fromkeys(C.REGISTRY, 24), seed=0)
    return root


def _raw_records(path: Path) -> list:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _type_of(value) -> str:
    if isinstance(value, str):
        return C.STRING
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return C.STRINGS
    return type(value).__name__


@pytest.mark.parametrize("key", list(C.REGISTRY))
def test_registry_maps_only_declared_fields(key):
    entry = C.REGISTRY[key]
    hub = entry.hub
    assert set(hub.mapped_fields()) <= set(hub.schema), (key, hub.mapped_fields(), hub.schema)
    assert set(hub.schema.values()) <= {C.STRING, C.STRINGS}
    assert ("negatives" in hub.columns) == entry.annotated_negatives
    assert entry.verified or entry.note  # an unverified source says why


@pytest.mark.parametrize("key", list(C.REGISTRY))
def test_mirror_files_have_exactly_the_declared_schema(mirror, key):
    hub = C.REGISTRY[key].hub
    records = [r for path in mirror_paths(mirror, key) for r in _raw_records(path)]
    assert len(records) == 24
    for record in records:
        if hub.layout == "list":
            assert isinstance(record, list)
            assert [_type_of(v) for v in record] == list(hub.schema.values())
        else:
            assert list(record) == list(hub.schema)  # these fields and nothing more
            assert {k: _type_of(v) for k, v in record.items()} == dict(hub.schema)
    if hub.data_files:  # where hrsa.data.remote looks for it
        assert remote.hub_mirror_file(mirror, hub.path, data_files=hub.data_files).is_file()
    queries = [r[0] if hub.layout == "list" else r[list(hub.schema)[0]] for r in records]
    assert len(set(queries)) == len(queries)


@pytest.mark.parametrize("key", list(C.REGISTRY))
def test_every_source_loads_from_the_mirror(mirror, key):
    entry = C.REGISTRY[key]
    examples, report = C.load_training_data(
        {"source": "hub", "sources": [key], "rows": 20}, mirror=mirror
    )
    assert len(examples) == 20
    assert all(e.source == key and e.instruction == entry.instruction for e in examples)
    assert all(e.query.strip() and e.positive.strip() for e in examples)
    assert all(bool(e.negatives) == entry.annotated_negatives for e in examples)
    assert len({e.query for e in examples}) == 20
    row = report["sets"][key]
    assert (row["requested"], row["available"], row["used"]) == (20, 24, 20)
    assert row["verified"] is entry.verified and row["n_paper"] == entry.n_paper
    if entry.language == "zh":
        assert any("\u4e00" <= ch <= "\u9fff" for ch in examples[0].query)


def test_hub_and_mirror_share_one_code_path(mirror, monkeypatch):
    """Without a mirror the loader asks the Hub for the same files; served from the mirror's
    copies, the examples are identical: only the location differs."""
    import datasets
    import huggingface_hub

    asked = []
    real_load_dataset = datasets.load_dataset

    def fake_download(repo_id, filename, *, repo_type, revision):
        asked.append((repo_id, filename, revision))
        assert repo_type == "dataset"
        return str(remote.hub_mirror_file(mirror, repo_id, data_files=filename))

    def fake_load_dataset(repo, name=None, *, split, revision=None, **kw):
        asked.append((repo, name, revision))
        path = remote.hub_mirror_file(
            mirror, repo, name=name, split=split, data_files=kw.get("data_files")
        )
        return real_load_dataset("json", data_files=str(path), split="train")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    cfg = {"source": "hub", "rows": 9, "seed": 3}
    from_hub, _ = C.load_training_data(cfg)
    monkeypatch.undo()
    from_mirror, _ = C.load_training_data(cfg, mirror=mirror)
    assert from_hub == from_mirror and len(from_hub) == 99
    assert (
        "sentence-transformers/embedding-training-data",
        "fever_train.jsonl.gz",
        C.ETD_FEVER_REVISION,
    ) in asked
    assert ("sentence-transformers/hotpotqa", "triplet-20", None) in asked
    assert sum(a[0] == "sentence-transformers/mr-tydi" for a in asked) == 11


def test_a_field_the_schema_lacks_fails_the_load(mirror, monkeypatch):
    entry = C.REGISTRY["dureader"]
    wrong = dataclasses.replace(
        entry.hub, columns={"query": "query", "positive": "positive", "negatives": "negative"}
    )
    monkeypatch.setitem(C.REGISTRY, "dureader", dataclasses.replace(entry, hub=wrong))
    with pytest.raises(DataError, match=r"no field\(s\) \['query'\]"):
        C.load_training_data({"source": "hub", "sources": ["dureader"], "rows": 5}, mirror=mirror)
    entry = C.REGISTRY["squad"]  # a list source declared with one field more than the file has
    wider = dataclasses.replace(entry.hub, schema=dict(entry.hub.schema) | {"negative": C.STRING})
    monkeypatch.setitem(C.REGISTRY, "squad", dataclasses.replace(entry, hub=wider))
    with pytest.raises(DataError, match="expected a JSON array of 3"):
        C.load_training_data({"source": "hub", "sources": ["squad"], "rows": 5}, mirror=mirror)


def test_sampling_is_seeded_exact_and_nested(mirror):
    def load(rows, seed=0):
        cfg = {"source": "hub", "sources": ["nli", "squad"], "rows": rows, "seed": seed}
        return C.load_training_data(cfg, mirror=mirror)[0]

    a = load(10)
    assert a == load(10)
    assert len(a) == 20 and sum(e.source == "nli" for e in a) == 10
    assert a != load(10, seed=1)
    assert {e.query for e in a} <= {e.query for e in load(15)}  # a larger sample keeps these
    idx = C.sample_indices(100, 30, seed=0, key="x")
    assert (
        len(set(idx)) == 30
        and idx == sorted(idx)
        and idx == C.sample_indices(100, 30, seed=0, key="x")
    )
    assert idx != C.sample_indices(100, 30, seed=0, key="y")


def test_shortfall_is_an_error_naming_the_set_or_recorded(mirror, caplog):
    cfg = {"source": "hub", "sources": ["nli", "t2ranking"], "rows": {"t2ranking": 30}}
    cfg["rows"]["nli"] = 5
    with pytest.raises(DataError, match="'t2ranking'.*24 rows, fewer than the 30 requested"):
        C.load_training_data(cfg, mirror=mirror)
    examples, report = C.load_training_data(cfg | {"allow_shortfall": True}, mirror=mirror)
    row = report["sets"]["t2ranking"]
    assert (row["requested"], row["available"], row["used"], row["shortfall"]) == (30, 24, 24, 6)
    assert len(examples) == 29 and "allow_shortfall" in caplog.text


def test_write_training_data_and_its_report(mirror, tmp_path):
    out = tmp_path / "contrastive.jsonl"
    cfg = {"source": "hub", "scale": 0.0001}  # Table 7 x 1e-4: 2..50 rows per set
    with pytest.raises(DataError, match="'nli'"):  # 28 rows asked, the mirror has 24
        C.write_training_data(cfg, out, mirror=mirror)
    report = C.write_training_data(cfg | {"allow_shortfall": True}, out, mirror=mirror)
    saved = json.loads(C.report_path(out).read_text())
    assert saved == report
    assert report["written"] == len(C.read_examples(out)) == report["total_used"]
    assert saved["sets"]["squad"]["requested"] == 8 and saved["sets"]["squad"]["used"] == 8
    assert saved["sets"]["msmarco"]["shortfall"] == 50 - 24
    assert saved["sets"]["fever"]["verified"] is False
    assert saved["sets"]["nli"]["origin"].endswith("(AllNLI.jsonl.gz)")


def test_synthetic_data_declares_two_sets_without_negatives():
    examples, report = C.load_training_data({"source": "synthetic", "n_per_source": 8})
    groups = C.group_by_source(examples)
    for source, rows in groups.items():
        assert len(rows) == 8
        assert all(bool(r.negatives) == C.SYNTHETIC_ANNOTATED[source] for r in rows)
    assert sorted(s for s, a in C.SYNTHETIC_ANNOTATED.items() if not a) == [
        "synthetic_claims",
        "synthetic_search",
    ]
    assert report["sets"]["synthetic_search"]["annotated_negatives"] is False
