"""hrsa.plan: what the workflow runs, tested directly on configs (no Snakefile).

The end-to-end test (tests/test_workflow.py) checks that Snakemake runs exactly this plan; the
dry-run tests of config/paper.yaml check the job counts through Snakemake as well.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from hrsa.config import validate_config
from hrsa.errors import ConfigError
from hrsa.plan import Plan, Unit, alternatives, normalised

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


def plan_of(cfg: dict, local=()) -> Plan:
    """A plan of ``cfg`` (validated here) where only the paths in ``local`` exist."""
    validate_config(cfg)
    return Plan(cfg, exists=lambda p: p in set(local))


@pytest.fixture
def default():
    return plan_of(load("config.yaml"))


@pytest.fixture
def paper():
    return plan_of(load("paper.yaml"))


def test_default_plan_counts_every_job_kind(default):
    units = default.analysis_units()
    # 2 pairs x (backbone, emb) x 3 datasets + 2 pairs x snapshots 10, 20, 30 on cot
    assert len(units) == 18
    assert Unit("tiny-sft-control", "step20", "cot") in units
    assert Unit("tiny-sft-control", "step20", "mmlu_pro") not in units
    # a backbone shared by two pairs is extracted once: 3 models x (3 + 3 + 3 snapshots)
    assert len(default.extraction_targets()) == 27
    assert len(default.pair_check_targets()) == 18
    assert default.training_targets() == [
        "results/embeddings/tiny-base/seed0",
        "results/embeddings/tiny-rlvr/seed0",
        "results/embeddings/tiny-sft/seed0",
        "results/embeddings/tiny-rlvr/lora-seed0",  # training.lora (Table 6)
    ]
    hrsa = default.hrsa_targets()
    assert len([t for t in hrsa if t.endswith("/metrics.csv")]) == 18
    assert sorted(t for t in hrsa if t.endswith("probe.csv")) == [
        f"results/hrsa/{p}/{s}/ag_news/probe.csv"
        for p in ("tiny-rlvr-grpo", "tiny-sft-control")
        for s in ("backbone", "emb")
    ]
    assert default.evaluation_targets() == ["results/mteb/table1.csv", "results/mteb/table1.md"]
    assert len(default.eval_runs()) == 4
    assert ("tiny-rlvr", "lora", 0, "HRSA-Local") in default.eval_runs()
    assert default.dynamics_steps() == [0, 10, 20, 30]
    assert default.prefetch_inputs()[:3] == [
        f"results/data/probe/{d}.jsonl" for d in ("cot", "mmlu_pro", "ag_news")
    ]


def test_paper_plan_matches_the_papers_design(paper):
    # Table 10's six pairs train; 11 distinct backbones x 3 seeds, and Table 6's two LoRA twins
    assert len(paper.trained_models()) == 11
    assert len(paper.training_targets()) == 33 + 2 * 3
    assert paper.lora_models() == ["ds-r1-distill-qwen-1.5b", "nemotron-prorl-1.5b"]
    # (11 embedding models + 2 LoRA twins) x 3 seeds x 3 benchmarks
    assert len(paper.eval_runs()) == 99 + 18
    assert set(paper.benchmarks.values()) == {"MTEB(Multilingual, v2)", "MTEB(Code, v1)", "BRIGHT"}
    # every hub model is prefetched (nothing exists locally here), never built
    assert len(paper.prefetched_models()) == len(paper.models)
    assert paper.model_input("qwen3-4b") == "results/prefetch/models/qwen3-4b.json"
    # untrained pairs (Table 9 only) have the backbone stage alone
    untrained = [p for p in paper.pairs if not paper.pair_trains(p)]
    assert untrained and all(paper.pair_stages(p, dynamics=True) == ["backbone"] for p in untrained)
    assert len(paper.hrsa_targets()) == 2 * 69 + 15


def test_a_local_source_directory_needs_no_prefetch():
    cfg = load("paper.yaml")
    local = cfg["models"]["qwen3-4b"]["source"]
    plan = plan_of(cfg, local=[local])
    assert plan.model_input("qwen3-4b") == local
    assert "results/prefetch/models/qwen3-4b.json" not in plan.prefetch_inputs()


AUTHORS_URL = (
    "https://raw.githubusercontent.com/HKUST-KnowComp/Reasoning-Embedding/"
    "761051bc8d9450a20bee0dddfb3c28c714c9d23a/evaluation/task_prompts.json"
)


def test_the_authors_instructions_are_prefetched_and_read_by_every_evaluation():
    cfg = load("paper.yaml")
    cfg["evaluation"]["prompts"] = {"authors": AUTHORS_URL}
    plan = plan_of(cfg)
    records = [
        "results/prefetch/prompts/authors.json",
        "results/prefetch/prompts/authors_bright.json",
    ]
    # `snakemake prefetch` downloads both of the authors' files (the BRIGHT one by default)
    assert [f for f in plan.prefetch_inputs() if "/prompts/" in f] == records
    assert plan.prompt_downloads() == ["authors", "authors_bright"]
    assert plan.prompt_url("authors") == AUTHORS_URL
    assert plan.prompt_url("authors_bright").endswith(
        "/761051bc8d9450a20bee0dddfb3c28c714c9d23a/evaluation/evaluate_bright.py"
    )
    downloads = [
        "results/prefetch/prompts/authors.raw",
        "results/prefetch/prompts/authors_bright.raw",
    ]
    assert plan.eval_authors_input() == downloads
    assert plan.eval_prompts() == "config/prompts.yaml"  # the fallback
    assert plan.eval_instruction_settings() == {
        "authors": downloads[0],
        "authors_origin": AUTHORS_URL,
        "authors_bright": downloads[1],
        "authors_bright_origin": plan.prompt_url("authors_bright"),
        "unlisted": "authors_default",
    }
    assert len(plan.instruction_files()) == len(plan.eval_runs()) == 99 + 18
    assert plan.instruction_files()[0]["path"].endswith(".instructions.csv")
    assert plan.table1_settings()["instruction_files"] == plan.instruction_files()
    # {} = the authors' files at the pinned commit, the schema's defaults
    cfg = load("paper.yaml")
    cfg["evaluation"]["prompts"] = {}
    assert plan_of(cfg).prompt_url("authors") == AUTHORS_URL


def test_local_authors_files_need_no_download_and_a_plain_file_none():
    cfg = load("config.yaml")
    cfg["evaluation"]["prompts"] = {
        "authors": "mine/task_prompts.json",
        "authors_bright": None,
        "unlisted": "fallback",
        "fallback": "mine/prompts.yaml",
    }
    plan = plan_of(cfg, local=["mine/task_prompts.json"])
    assert plan.prompt_downloads() == [] and not [
        f for f in plan.prefetch_inputs() if "prompts" in f
    ]
    assert plan.eval_authors_input() == ["mine/task_prompts.json"]
    assert plan.eval_prompts() == "mine/prompts.yaml"
    settings = plan.eval_instruction_settings()
    assert settings["authors_bright"] is None and settings["unlisted"] == "fallback"
    with pytest.raises(ConfigError, match="config key evaluation.prompts.authors: 'mine/"):
        plan_of(cfg).eval_authors_input()  # neither a URL nor an existing file
    plain = plan_of(load("config.yaml"))
    assert plain.eval_prompts() == "config/prompts.yaml" and not plain.uses_authors_prompts()
    assert plain.eval_authors_input() == [] and plain.eval_instruction_settings() is None
    # the plan's keys of the authors' files are the library's
    from hrsa.evaluate.authors import KINDS
    from hrsa.plan import AUTHORS_PROMPTS

    assert AUTHORS_PROMPTS == KINDS


def test_stage_inputs_and_paths(default):
    assert default.stage_model_input("tiny-base", "backbone") == "results/models/tiny-base"
    assert default.stage_model_input("tiny-base", "step0") == "results/models/tiny-base"
    assert default.stage_model_input("tiny-base", "emb") == "results/embeddings/tiny-base/seed0"
    assert default.stage_model_input("tiny-base", "step20") == "results/embeddings/tiny-base/seed0"
    assert default.stage_model_path("tiny-base", "step20") == (
        "results/embeddings/tiny-base/seed0/checkpoints/step20"
    )
    assert default.extraction_attention("backbone") == "bidirectional"
    cfg = load("config.yaml")
    cfg["activations"]["attention"] = "causal"
    causal = plan_of(cfg)
    assert causal.extraction_attention("backbone") == "causal"
    assert causal.extraction_attention("emb") == "bidirectional"  # embedding models always


def test_published_embedding_model_replaces_training_and_has_no_snapshots():
    cfg = load("config.yaml")
    cfg["models"]["tiny-rlvr"]["embedding_source"] = {"source": "org/reason-embedding"}
    cfg["training"]["lora"]["models"] = []  # LoRA needs the model trained (tested below)
    plan = plan_of(cfg)
    assert "tiny-rlvr" not in plan.trained_models()
    assert plan.pair_stages("tiny-rlvr-grpo", dynamics=True) == ["backbone", "emb"]
    assert plan.pair_stages("tiny-sft-control", dynamics=True)[-1] == "step30"
    assert plan.emb_model_input("tiny-rlvr") == "results/prefetch/embeddings/tiny-rlvr.json"
    assert plan.emb_model_source("tiny-rlvr") == "org/reason-embedding"
    assert "results/prefetch/embeddings/tiny-rlvr.json" in plan.prefetch_inputs()
    # evaluated once (first seed), like a backbone
    assert [r for r in plan.eval_runs() if r[0] == "tiny-rlvr"] == [
        ("tiny-rlvr", "emb", 0, "HRSA-Local")
    ]
    with pytest.raises(ConfigError, match="models.tiny-rlvr.embedding_source"):
        plan.stage_model_input("tiny-rlvr", "step10")


def test_training_disabled_leaves_only_the_backbones():
    cfg = load("config.yaml")
    cfg["training"]["enabled"] = False
    plan = plan_of(cfg)
    assert plan.training_targets() == [] and plan.dynamics_steps() == []
    assert {u.stage for u in plan.analysis_units()} == {"backbone"}
    assert plan.evaluation_targets() == []  # no embedding model to evaluate
    assert "Table 7" in plan.report_skipped() and "Figure 5" in plan.report_skipped()


def test_settings_come_from_the_validated_config_without_restated_defaults():
    cfg = load("config.yaml")
    del cfg["training"]["mining"]["num_negatives"]
    plan = plan_of(cfg)
    # the schema's default reached the mining rule and the trainer (derived num_negatives)
    assert plan.mining_settings()["num_negatives"] == 3
    assert plan.trainer_settings(1)["num_negatives"] == 3
    assert plan.trainer_settings(1)["seed"] == 1
    assert "max_grad_norm" in plan.trainer_settings(0)  # filled by validation
    for key in ("enabled", "seeds", "gpus", "data", "mining", "dynamics_datasets"):
        assert key not in plan.trainer_settings(0)
    assert set(plan.mining_settings()) == {
        "num_negatives",
        "relative_margin",
        "range_max",
        "range_max_fraction",
        "batch_size",
        "use_faiss",
        "max_length",
    }
    assert set(plan.hrsa_settings()) >= {"device", "bootstrap", "knn_k", "accumulator_bytes"}
    assert not set(plan.hrsa_settings()) & {"datasets", "probe", "gpus"}
    assert plan.probe_settings() == {"C": 1.0, "max_iter": 1000, "seed": 42}
    assert plan.eval_settings()["max_length"] == 128  # config.yaml's, not the schema's 512


def test_hrsa_settings_feed_the_library_unchanged(default):
    pytest.importorskip("torch")
    from hrsa.metrics import HRSASettings

    settings = HRSASettings.from_config(default.hrsa_settings())
    assert settings.bootstrap == 30 and settings.knn_k == (5, 10, 50)


def test_trainer_settings_are_exactly_the_trainers_keys(default):
    pytest.importorskip("torch")
    from hrsa.train.config import TrainConfig

    cfg = TrainConfig.from_mapping(default.trainer_settings(0))
    assert cfg.max_steps == 30 and cfg.num_negatives == 3


def _shuffled(value, top=True):
    if isinstance(value, dict):
        items = list(value.items())
        if not top:
            items.reverse()
        return {k: _shuffled(v, top=False) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, top=False) for v in value]
    return value


def _every_param(plan: Plan) -> dict:
    """Every params value a rule records, over every wildcard value the plan produces."""
    out = {
        "hrsa": plan.hrsa_settings(),
        "probe": plan.probe_settings(),
        "eval": plan.eval_settings(),
        "mining": plan.mining_settings(),
        "data": plan.training_data_settings(),
        "verdicts": plan.verdict_thresholds(),
        "labels": plan.dataset_labels(),
        "skipped": plan.report_skipped(),
    }
    for d in plan.probe_datasets:
        out[f"extract/{d}"] = plan.extraction_settings(d)
        out[f"probe_spec/{d}"] = plan.probe_spec(d)
    for m in plan.models:
        if plan.is_built(m):
            out[f"build/{m}"] = plan.build_settings(m)
    for s in plan.train_seeds:
        out[f"train/{s}"] = plan.trainer_settings(s)
        out[f"train-lora/{s}"] = plan.trainer_settings(s, lora=True)
    out["table6"] = plan.table6_settings()
    return {k: repr(v) for k, v in out.items()}


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "rehearsal.yaml"])
def test_key_order_never_changes_a_recorded_param(name):
    cfg = load(name)
    shuffled = _shuffled(copy.deepcopy(cfg))
    assert list(shuffled["hrsa"]) != list(cfg["hrsa"])  # the shuffle did reorder
    assert _every_param(plan_of(cfg)) == _every_param(plan_of(shuffled))


def test_normalised_sorts_mappings_and_keeps_lists():
    assert list(normalised({"b": 1, "a": {"d": 2, "c": [3, {"f": 4, "e": 5}]}})) == ["a", "b"]
    assert normalised({"b": 1, "a": {"d": 2, "c": [3, {"f": 4, "e": 5}]}}) == {
        "a": {"c": [3, {"e": 5, "f": 4}], "d": 2},
        "b": 1,
    }
    assert repr(normalised({"y": [2, 1], "x": 0})) == "{'x': 0, 'y': [2, 1]}"


def test_wildcard_constraints_match_exactly_the_configured_names(default):
    constraints = default.wildcard_constraints()
    model = re.compile(f"^(?:{constraints['model']})$")
    assert model.match("tiny-base") and not model.match("tiny-base2")
    assert not re.match(f"^(?:{alternatives([])})$", "")  # nothing configured: nothing matches
    assert re.match(f"^(?:{alternatives(['a.b'])})$", "a.b")
    assert not re.match(f"^(?:{alternatives(['a.b'])})$", "axb")


def test_report_plan_follows_the_config(default):
    assert default.figure3_pairs() == ["tiny-sft-control", "tiny-rlvr-grpo"]
    assert default.main_dataset() == "cot" and default.probe_dataset() == "ag_news"
    assert default.include_table1()
    tables = {Path(t).stem for t in default.report_tables()}
    assert tables == {f"table{n}" for n in (1, 2, 3, 4, 6, 7, 12, 13)} | {
        "instructions",
        "table2_rlvr_vs_sft",
    }
    assert default.dynamics_results("tiny-sft-control") == [
        f"results/hrsa/tiny-sft-control/{s}/cot/summary.json"
        for s in ("backbone", "step10", "step20", "step30")
    ]


def test_rule_files_hold_no_planning_logic():
    """Outside rule declarations, a .smk file may only import and name the plan."""
    allowed = {"common.smk": {"PLAN", "THREADS"}}
    for path in sorted((ROOT / "rules").glob("*.smk")):
        defs = re.findall(r"^def (\w+)", path.read_text(), flags=re.M)
        assigned = set(re.findall(r"^([A-Za-z_]\w*)\s*=", path.read_text(), flags=re.M))
        assert not defs, f"{path.name} defines functions {defs}: move them to hrsa.plan"
        extra = assigned - allowed.get(path.name, set())
        assert not extra, f"{path.name} assigns {sorted(extra)} at module level: use hrsa.plan"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("report", "main_dataset", "nope", "config key report.main_dataset: 'nope'"),
        ("report", "probe_dataset", "cot", "config key report.probe_dataset: 'cot' must be"),
        ("report", "figure3_pairs", ["nope"], "config key report.figure3_pairs: 'nope'"),
        ("training", "dynamics_datasets", ["zzz"], "config key training.dynamics_datasets"),
    ],
)
def test_report_and_dynamics_choices_must_name_what_the_plan_has(section, key, value, message):
    cfg = load("config.yaml")
    cfg.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(cfg)


def _numeric_mmlu(cfg: dict) -> dict:
    """config.yaml with mmlu_pro (listed before ag_news) labelled with a numeric target."""
    cfg["probe_datasets"]["mmlu_pro"].update(labelled=True, target="numeric")
    return cfg


def test_a_numeric_probe_dataset_gets_the_ridge_probe():
    plain = plan_of(load("config.yaml"))
    plan = plan_of(_numeric_mmlu(load("config.yaml")))
    assert plan.probe_target("mmlu_pro") == "numeric" and plan.probe_target("ag_news") == "class"
    assert plan.probe_settings("mmlu_pro") == {"alpha": 1.0, "seed": 42, "task": "numeric"}
    # a class dataset's job records exactly what it recorded before the ridge probe
    assert plan.probe_settings("ag_news") == plain.probe_settings("ag_news")
    assert plan.probe_settings("ag_news") == {
        "C": 1.0,
        "extra_metrics": ["behavioural_consistency"],
        "max_iter": 1000,
        "seed": 42,
    }
    probes = sorted(t for t in plan.hrsa_targets() if t.endswith("probe.csv"))
    assert "results/hrsa/tiny-sft-control/emb/mmlu_pro/probe.csv" in probes
    assert len(probes) == 8  # 2 pairs x 2 stages x (ag_news, mmlu_pro)
    # the target is not data: the probe-data job of a class dataset records what it did before
    assert "target" not in plan.probe_spec("mmlu_pro")
    assert plan.probe_spec("ag_news") == plain.probe_spec("ag_news")
    # the report's default probe dataset skips the numeric one (its readout is accuracy)
    assert plan.probe_dataset() == "ag_news"
    assert all("/ag_news/" in p for p in plan.probe_results())
    rule = (ROOT / "rules" / "hrsa.smk").read_text()
    assert "settings=lambda wc: PLAN.probe_settings(wc.dataset)" in rule


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("report", "probe_dataset", "config key report.probe_dataset: 'mmlu_pro' has a numeric"),
        ("hrsa.probe", "dataset", "config key hrsa.probe.dataset: 'mmlu_pro' has a numeric"),
    ],
)
def test_a_numeric_report_probe_dataset_is_a_config_error(section, key, message):
    cfg = _numeric_mmlu(load("config.yaml"))
    where = cfg
    for part in section.split("."):
        where = where.setdefault(part, {})
    where[key] = "mmlu_pro"
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(cfg)


def test_a_numeric_target_needs_a_labelled_dataset():
    cfg = load("config.yaml")
    cfg["probe_datasets"]["mmlu_pro"]["target"] = "numeric"
    with pytest.raises(ConfigError, match=re.escape("config key probe_datasets.mmlu_pro.target")):
        validate_config(cfg)
    cfg = load("config.yaml")
    cfg["probe_datasets"]["mmlu_pro"]["target"] = "regression"
    with pytest.raises(ConfigError, match="probe_datasets.mmlu_pro.target"):
        validate_config(cfg)


def test_labelled_extra_metrics_run_with_the_probe_and_reach_the_table8_figure(default):
    assert default.probe_extra_metrics() == ["behavioural_consistency"]
    assert default.probe_settings("ag_news")["extra_metrics"] == ["behavioural_consistency"]
    assert "extra_metrics" not in default.probe_settings()  # no dataset: the report's defaults
    hrsa = default.hrsa_targets()
    probe_metrics = sorted(t for t in hrsa if t.endswith("probe_metrics.csv"))
    assert probe_metrics == sorted(
        t.replace("probe.csv", "probe_metrics.csv") for t in hrsa if t.endswith("/probe.csv")
    )
    assert len(probe_metrics) == 4
    assert sorted(default.probe_metric_results()) == probe_metrics
    assert default.table8_figure_metrics()[-1] == "behavioural_consistency"
    cfg = load("config.yaml")
    cfg["hrsa"]["probe"]["extra_metrics"] = []
    plan = plan_of(cfg)
    assert plan.probe_outputs() == {"probe": "results/hrsa/{pair}/{stage}/{dataset}/probe.csv"}
    assert not plan.probe_metric_results() and "extra_metrics" not in plan.probe_settings("ag_news")


def test_lora_targets_train_evaluate_and_make_table6(default):
    pytest.importorskip("torch")
    from hrsa.train.config import TrainConfig

    assert default.lora_models() == ["tiny-rlvr"]
    lora = default.trainer_settings(0, lora=True)
    full = default.trainer_settings(0)
    assert lora["adapter"] == {
        "rank": 8,
        "alpha": 16,
        "dropout": 0.1,
        "target_modules": "all-linear",
    }
    assert lora["learning_rate"] == 5.0e-3 and full["learning_rate"] == 1.0e-3
    assert "adapter" not in full and "lora" not in full
    # everything else is the identical recipe
    assert {k: v for k, v in lora.items() if k not in ("adapter", "learning_rate")} == {
        k: v for k, v in full.items() if k != "learning_rate"
    }
    assert TrainConfig.from_mapping(lora).adapter["rank"] == 8
    assert (
        default.eval_model_input("tiny-rlvr", "lora", 0)
        == "results/embeddings/tiny-rlvr/lora-seed0"
    )
    assert default.table6_settings()["models"] == ["tiny-rlvr"]
    assert "Table 6" not in default.report_skipped()


def test_lora_needs_a_trained_model_and_evaluation_for_table6():
    cfg = load("config.yaml")
    cfg["training"]["lora"]["models"] = ["tiny-miner"]
    with pytest.raises(ConfigError, match=r"training\.lora\.models.*tiny-miner"):
        plan_of(cfg).training_targets()
    cfg = load("config.yaml")
    cfg["training"]["lora"]["models"] = []
    plan = plan_of(cfg)
    assert not any("lora" in t for t in plan.training_targets())
    assert "Table 6" in plan.report_skipped() and not any(
        "table6" in t for t in plan.report_tables()
    )
    cfg = load("config.yaml")
    cfg["evaluation"]["enabled"] = False
    cfg["report"] = {**cfg.get("report", {}), "include_table1": False}
    plan = plan_of(cfg)
    assert "results/embeddings/tiny-rlvr/lora-seed0" in plan.training_targets()
    assert "Table 6" in plan.report_skipped()
