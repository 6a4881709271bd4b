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
    with pytest.raises(ConfigError, match=r"probe_datasets\.f\.filters\.nope"):
        load_probe_dataset("f", {"generator": "multiple_choice", "n": 5, "filters": {"nope": 1}})
    (tmp_path / "ok.jsonl").write_text('{"text": "a"}\n')
    with pytest.raises(DataError, match="filter field 'nope'"):
        load_probe_dataset("l", {"local": str(tmp_path / "ok.jsonl"), "filters": {"nope": 1}})
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


# ----------------------------------------------------------------------------------------------
# The paper's sources: declared schemas, a real-schema mirror, plan-time checks
# ----------------------------------------------------------------------------------------------

from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from hrsa.data import probe, remote  # noqa: E402
from hrsa.data.probe_fixtures import write_probe_mirror  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTYPES = {"str": str, "int": int, "bool": bool}


def _type_ok(value, declared: str) -> bool:
    if declared == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if declared == "list[message]":
        return isinstance(value, list) and all(
            isinstance(m, dict) and set(m) == {"role", "content"} for m in value
        )
    if declared == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, PYTYPES[declared])


def _read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    return root, write_probe_mirror(root, seed=0, ag_news_rows=80, mmlu_pro_per_category=6)


def paper_specs() -> dict:
    return yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["probe_datasets"]


def test_mirror_files_have_exactly_the_declared_fields_and_types(mirror):
    _, files = mirror
    for key in ("mmlu_pro", "ag_news"):
        declared = REGISTRY[key].fields
        rows = _read(files[key][0])
        assert rows
        for r in rows:
            assert set(r) == set(declared), key
            assert all(_type_ok(r[f], t) for f, t in declared.items()), (key, r)
    cot = REGISTRY["cot"]
    assert len(files["cot"]) == 4
    for path in files["cot"]:
        for r in _read(path):
            assert set(cot.fields) <= set(r) <= set(cot.fields) | set(cot.optional_fields)
            assert "text" not in r and "difficulty" not in r and "tier" not in r
            for f, t in {**cot.fields, **cot.optional_fields}.items():
                assert f not in r or _type_ok(r[f], t), (path.name, f, r[f])


def test_mirror_content_makes_sense_for_the_analysis(mirror):
    _, files = mirror
    labels = [r["correctness_label"] for p in files["cot"] for r in _read(p)]
    assert {-1, 0, 1} <= set(labels)
    hard = [p for p in files["cot"] if "/hard/" in str(p)]
    assert len(hard) == 1 and sum(r["correctness_label"] == 1 for r in _read(hard[0])) >= 16
    for p in files["cot"]:
        for r in _read(p):
            if r["correctness_label"] == 1:
                assert 100 <= len(r["reasoning"]) <= 800 and r["problem"] and r["answer"]
    mmlu = _read(files["mmlu_pro"][0])
    assert {r["category"] for r in mmlu} == set(probe.MMLU_PRO_CATEGORIES)
    assert all(
        r["options"][r["answer_index"]] and "ABCDEFGHIJ"[r["answer_index"]] == r["answer"]
        for r in mmlu
    )
    assert sorted({r["label"] for r in _read(files["ag_news"][0])}) == [0, 1, 2, 3]
    assert len(_read(files["ag_news"][0])) == 80


def test_mirror_layout_is_the_one_hrsa_data_remote_reads(mirror):
    root, files = mirror
    assert remote.hub_mirror_file(root, "TIGER-Lab/MMLU-Pro", split="test") == files["mmlu_pro"][0]
    assert remote.hub_mirror_file(root, "fancyzhx/ag_news", split="test") == files["ag_news"][0]
    urls = [u for us in REGISTRY["cot"].urls.values() for u in us]
    assert sorted(remote.url_mirror_file(root, u) for u in urls) == sorted(files["cot"])
    assert all(u.startswith(probe.COT_BASE) and probe.COT_COMMIT in u for u in urls)


def test_mirror_writer_is_deterministic(tmp_path):
    a = write_probe_mirror(tmp_path / "a", seed=3, ag_news_rows=12, mmlu_pro_per_category=2)
    b = write_probe_mirror(tmp_path / "b", seed=3, ag_news_rows=12, mmlu_pro_per_category=2)
    c = write_probe_mirror(tmp_path / "c", seed=4, ag_news_rows=12, mmlu_pro_per_category=2)
    for key in a:
        for pa, pb, pc in zip(a[key], b[key], c[key], strict=True):
            assert pa.read_text() == pb.read_text()
            assert pa.read_text() != pc.read_text()


def test_registry_sources_load_from_the_mirror_by_the_hub_code_path(mirror, monkeypatch):
    root, files = mirror
    calls = []
    real_hub, real_url = remote.load_hub_dataset, remote.read_jsonl_url
    monkeypatch.setattr(
        remote, "load_hub_dataset", lambda *a, **k: calls.append((a, k)) or real_hub(*a, **k)
    )
    monkeypatch.setattr(
        remote, "read_jsonl_url", lambda *a, **k: calls.append((a, k)) or real_url(*a, **k)
    )
    ag = load_probe_dataset("ag_news", {"registry": "ag_news", "labelled": True}, mirror=root)
    raw = _read(files["ag_news"][0])
    assert [r["text"] for r in ag] == [r["text"] for r in raw]  # every row, verbatim
    assert [r["label"] for r in ag] == [r["label"] for r in raw]
    mmlu = load_probe_dataset("mmlu_pro", {"registry": "mmlu_pro"}, mirror=root)
    raw = _read(files["mmlu_pro"][0])
    assert [r["text"] for r in mmlu] == [r["question"] for r in raw]
    assert [r["label"] for r in mmlu] == [r["answer_index"] for r in raw]
    assert [r["id"] for r in mmlu] == [str(r["question_id"]) for r in raw]
    cot = load_probe_dataset("cot", {"registry": "cot"}, mirror=root)
    hard = _read(next(p for p in files["cot"] if "/hard/" in str(p)))
    assert [r["text"] for r in cot] == [r["reasoning"] for r in hard if r["correctness_label"] == 1]
    assert all(r["label"] is None for r in cot)
    # the Hub loader got the real repo ids and splits; only `mirror` differs from a Hub run
    hub = [(a[0], k["split"], k["mirror"]) for a, k in calls if "split" in k]
    assert hub == [("fancyzhx/ag_news", "test", root), ("TIGER-Lab/MMLU-Pro", "test", root)]
    urls = [a[0] for a, k in calls if "split" not in k]
    assert urls == list(REGISTRY["cot"].urls["hard"])


class TrackingRow(dict):
    """A row that records every field the loader looks at."""

    seen: set

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.seen.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize(
    "key,spec",
    [
        *paper_specs().items(),
        (
            "cot_all",
            {
                "registry": "cot",
                "tiers": ["easy", "moderate", "hard"],
                "filters": {"tier": ["easy", "hard"], "correctness_label": [0, 1]},
            },
        ),
        (
            "mmlu_small",
            {
                "registry": "mmlu_pro",
                "stratify": {"field": "category", "per_group": 2},
                "limit": 10,
            },
        ),
    ],
)
def test_loaders_read_only_fields_the_real_schema_declares(mirror, monkeypatch, key, spec):
    """Fails if a loader reads (even with .get) a field the real source does not have."""
    root, _ = mirror
    seen: set = set()
    TrackingRow.seen = seen
    monkeypatch.setattr(probe, "_rows", lambda ds: [TrackingRow(r) for r in ds])
    if "stratify" in spec and spec["stratify"]["per_group"] > 6:
        spec = {**spec, "stratify": {**spec["stratify"], "per_group": 4}}
    records = load_probe_dataset(key, spec, mirror=root)
    assert records
    src = REGISTRY[spec["registry"]]
    derived = set(getattr(src, "derived_fields", {})) | set(probe.LOADER_KEYS)
    assert seen and seen <= set(src.fields) | derived, seen - set(src.fields)
    # and every field the spec names is declared
    named = {spec.get(k, getattr(src, k)) for k in probe.FIELD_KEYS} - {None}
    named |= set(spec.get("filters", {})) | set(src.filters)
    named |= {spec["stratify"]["field"]} if "stratify" in spec else set()
    assert named <= set(src.fields) | set(getattr(src, "derived_fields", {}))


def test_paper_probe_specs_pass_the_plan_time_check():
    specs = paper_specs()
    assert set(specs) == {"cot", "mmlu_pro", "ag_news"}
    for key, spec in specs.items():
        probe.check_spec(key, spec)
    assert specs["cot"]["tiers"] == ["hard"] and specs["cot"]["filters"] == {"correctness_label": 1}
    assert specs["mmlu_pro"]["stratify"] == {"field": "category", "per_group": 100, "seed": 0}
    assert "limit" not in specs["mmlu_pro"] and "limit" not in specs["ag_news"]
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["probe_datasets"]
    for key, spec in default.items():
        probe.check_spec(key, spec)


@pytest.mark.parametrize(
    "spec,where,mentions",
    [
        (
            {"registry": "cot", "filters": {"difficulty": "hard"}},
            "probe_datasets.cot.filters.difficulty",
            ["correctness_label", "reasoning", "tier"],
        ),
        ({"registry": "cot", "text_field": "text"}, "probe_datasets.cot.text_field", ["problem"]),
        (
            {"registry": "ag_news", "label_field": "topic"},
            "probe_datasets.cot.label_field",
            ["'label'", "'text'"],
        ),
        (
            {"registry": "mmlu_pro", "stratify": {"field": "subject", "per_group": 3}},
            "probe_datasets.cot.stratify.field",
            ["category"],
        ),
        (
            {"registry": "mmlu_pro", "filters": {"tier": "hard"}},
            "probe_datasets.cot.filters.tier",
            ["question"],
        ),
        ({"registry": "ag_news", "tiers": ["hard"]}, "probe_datasets.cot.tiers", ["cot"]),
        ({"registry": "cot", "tiers": ["expert"]}, "probe_datasets.cot.tiers", ["expert"]),
        ({"registry": "cot", "hub_id": "lucaswychan/x"}, "probe_datasets.cot.hub_id", ["URLs"]),
        (
            {"generator": "arithmetic_traces", "filters": {"difficulty": 1}},
            "probe_datasets.cot.filters.difficulty",
            ["correctness_label", "tier"],
        ),
        ({"registry": "wat"}, "probe_datasets.cot.registry", ["ag_news"]),
    ],
)
def test_plan_time_check_names_the_key_and_the_declared_fields(spec, where, mentions):
    with pytest.raises(ConfigError) as err:
        probe.check_spec("cot", spec)
    msg = str(err.value)
    assert msg.startswith(f"config key {where}: ") and all(m in msg for m in mentions), msg


def test_local_files_are_not_checked_at_plan_time():
    probe.check_spec("x", {"local": "nowhere.jsonl", "filters": {"anything": 1}, "text_field": "b"})


def test_generator_fields_are_declared_exactly():
    for name, gen in synthetic.GENERATORS.items():
        assert set(gen(3, 0)[0]) == set(probe.GENERATOR_FIELDS[name]), name


def test_stratified_sample_of_mmlu_pro_is_exact_seeded_and_deterministic(mirror):
    root, files = mirror
    raw = {str(r["question_id"]): r for r in _read(files["mmlu_pro"][0])}

    def load(seed, per_group=4):
        spec = {
            "registry": "mmlu_pro",
            "stratify": {"field": "category", "per_group": per_group, "seed": seed},
        }
        return load_probe_dataset("mmlu_pro", spec, mirror=root)

    a, b, c = load(0), load(0), load(1)
    assert a == b and len(a) == 14 * 4
    counts = {}
    for r in a:
        counts[raw[r["id"]]["category"]] = counts.get(raw[r["id"]]["category"], 0) + 1
    assert counts == dict.fromkeys(probe.MMLU_PRO_CATEGORIES, 4)
    assert [r["id"] for r in a] != [r["id"] for r in c]
    order = list(raw)
    assert [order.index(r["id"]) for r in a] == sorted(order.index(r["id"]) for r in a)
    with pytest.raises(DataError, match=r"too few in .*'biology' \(6\)"):
        load(0, per_group=7)


def test_stratified_sample_groups_do_not_depend_on_each_other():
    rows = [{"g": g, "i": i} for i, g in enumerate("ab" * 20)]
    full = probe.stratified_sample(rows, "g", 3, seed=5)
    only_a = probe.stratified_sample([r for r in rows if r["g"] == "a"], "g", 3, seed=5)
    assert [r for r in full if r["g"] == "a"] == only_a


def test_cot_tiers_select_files_and_derive_the_tier(mirror):
    root, files = mirror
    by_tier = {
        t: [r for p in files["cot"] if f"/{t}/" in str(p) for r in _read(p)]
        for t in ("easy", "moderate", "hard")
    }
    default = load_probe_dataset("cot", {"registry": "cot"}, mirror=root)
    assert all(r["id"].startswith("hard/") for r in default)
    assert len(default) == sum(r["correctness_label"] == 1 for r in by_tier["hard"])
    two = load_probe_dataset("cot", {"registry": "cot", "tiers": ["easy", "moderate"]}, mirror=root)
    assert {r["id"].split("/")[0] for r in two} == {"easy", "moderate"}
    assert len(two) == sum(
        r["correctness_label"] == 1 for t in ("easy", "moderate") for r in by_tier[t]
    )
    assert len({r["id"] for r in two}) == len(two)  # ids unique across files
    filtered = load_probe_dataset(
        "cot",
        {"registry": "cot", "tiers": ["easy", "hard"], "filters": {"tier": "easy"}},
        mirror=root,
    )
    assert filtered and all(r["id"].startswith("easy/") for r in filtered)
    wrong = load_probe_dataset(
        "cot", {"registry": "cot", "filters": {"correctness_label": 0}}, mirror=root
    )
    assert len(wrong) == sum(r["correctness_label"] == 0 for r in by_tier["hard"])


def test_cot_downloads_only_into_the_cache_and_never_in_offline_jobs(mirror, tmp_path, monkeypatch):
    root, _ = mirror
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="prefetch"):
        load_probe_dataset("cot", {"registry": "cot"}, cache_dir=tmp_path / "cache")
    # what the prefetch step downloaded (same layout as the mirror) is read from the cache
    import shutil

    shutil.copytree(root / "url", tmp_path / "cache" / "url")
    cached = load_probe_dataset("cot", {"registry": "cot"}, cache_dir=tmp_path / "cache")
    assert cached == load_probe_dataset("cot", {"registry": "cot"}, mirror=root)


def test_probe_data_script_passes_the_mirror():
    # the rule's params come from hrsa.plan (tests/test_plan.py checks their values)
    script = (ROOT / "workflow" / "scripts" / "probe_data.py").read_text()
    assert "mirror=snakemake.params.mirror" in script
