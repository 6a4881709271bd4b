"""Issue 17, items 3-5 (config): everything a job would reject fails ``validate_config`` - i.e.
``snakemake -n`` - naming the key, before any job runs (and before Snakemake deletes a job's
previous outputs).

The agreement tables build each job's settings the way the job does (``hrsa.plan.Plan``) from the
default config with one value changed, run the library's own check on them (``TrainConfig``,
``HRSASettings`` and the subsample-metric lookup, Table 2's thresholds) and require: whatever the
library rejects, ``validate_config`` rejects too, naming the key.
"""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hrsa.config as config_module
from hrsa.config import validate_config
from hrsa.errors import ConfigError, HRSAError
from hrsa.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
VALID = validate_config(copy.deepcopy(DEFAULT))


def edited(key: str, value) -> dict:
    """The default config (as written, not default-filled) with ``key`` (dotted) set."""
    cfg = copy.deepcopy(DEFAULT)
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = copy.deepcopy(value)
    return cfg


def validation_error(cfg: dict) -> str | None:
    try:
        validate_config(cfg)
    except ConfigError as exc:
        return str(exc)
    return None


def names_key(message: str, key: str) -> bool:
    """The project's wording: ``config key <key>...: ...`` (a list entry may add ``[i]``)."""
    return re.match(rf"config key {re.escape(key)}(\[\d+\]|\.[^:]+)?: ", message) is not None


# ------------------------------------------------------------------ the issue's cases, one by one
ISSUE_CASES = [
    # item 3: the settings TrainConfig rejects inside the training job
    ("training.save_every", 0),
    ("training.learning_rate", "fast"),
    ("training.warmup_ratio", 1),
    ("training.mixed_precision", "fp16"),
    ("training.save_dtype", "float16"),
    # ... and the string learning rates the schema's pattern lets through
    ("training.learning_rate", "-1"),
    ("training.learning_rate", "0"),
    ("training.learning_rate", "1.2.3"),
    ("training.learning_rate", -0.001),
    ("training.lora.learning_rate", "-5e-3"),
    # item 4: a verdict threshold k HRSA does not compute (Table 2 said n/a, no warning)
    ("report.verdicts.knn_k", 7),
    # item 5: cross-references (bare KeyError, MissingInputException, extra trainings)
    ("report.figure3_pairs", ["nope"]),
    ("training.dynamics_datasets", ["nope"]),
    ("report.main_dataset", "nope"),
    ("analysis_seed", 3),
    # cross-references found on the way
    ("report.dataset_labels", {"nope": "Nope"}),
    ("evaluation.tasks", {"MTEB(eng, v2)": ["NFCorpus"]}),  # not a configured benchmark
    ("evaluation.benchmarks", ["MTEB(eng, v2)", "MTEB eng v2"]),  # one results path
    ("training.lora.models", ["nope"]),
    ("hrsa.extra_metrics", ["nope"]),
    ("hrsa.extra_metrics", ["cross_model_probe"]),  # needs labels: not a subsample metric
]


@pytest.mark.parametrize(("key", "value"), ISSUE_CASES, ids=[f"{k}={v!r}" for k, v in ISSUE_CASES])
def test_each_bad_setting_fails_validation_naming_the_key(key, value):
    message = validation_error(edited(key, value))
    assert message is not None, f"{key}: {value!r} passed validation"
    assert names_key(message, key), message


def test_analysis_seed_outside_the_training_seeds_is_named_not_trained_silently():
    message = validation_error(edited("analysis_seed", 3))
    assert "training.seeds [0]" in message
    # a training seed is fine, and without training any seed is
    cfg = edited("analysis_seed", 1)
    cfg["training"]["seeds"] = [0, 1]
    cfg["evaluation"]["seeds"] = [0]
    validate_config(cfg)
    cfg = edited("analysis_seed", 3)
    cfg["training"]["enabled"] = False
    cfg["evaluation"]["enabled"] = False
    validate_config(cfg)


# ------------------------------------------------------------------ the library and validation agree
def _library_rejects(section: str, key: str, value) -> str | None:
    """The job's own check on settings built the job's way (the validated default config with
    ``key`` of ``section`` set to ``value`` afterwards); its message, or None if it accepts."""
    cfg = copy.deepcopy(VALID)
    node = cfg
    for part in section.split("."):
        node = node[part]
    node[key] = copy.deepcopy(value)
    plan = Plan(cfg)
    try:
        if section == "training":
            from hrsa.train.config import TrainConfig

            TrainConfig.from_mapping(plan.trainer_settings(0))
        elif section == "training.lora":
            from hrsa.train.config import TrainConfig

            TrainConfig.from_mapping(plan.trainer_settings(0, lora=True))
        elif section == "hrsa":  # workflow/scripts/hrsa_metrics.py, then compare_stores
            from hrsa.metrics.layerwise import HRSASettings
            from hrsa.metrics.registry import subsample_metric

            settings = HRSASettings.from_config(plan.hrsa_settings())
            for name in settings.extra_metrics:
                subsample_metric(name)
        elif section == "report.verdicts":  # workflow/scripts/report_table2.py
            from hrsa.report.verdicts import thresholds_from_config

            thresholds_from_config(plan.verdict_thresholds())
        else:
            raise AssertionError(section)
    except (HRSAError, TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# (section, key, bad values, good values) of every key a job's settings class checks
AGREEMENT = [
    ("training", "temperature", [0, -1, "0.1", None], [0.02, 1]),
    ("training", "global_batch_size", [0, -1, 1.5, "32", True, None], [32]),
    ("training", "mini_batch_size", [0, -8, 2.5], [8, 4]),
    ("training", "max_steps", [0, -1, 3.0], [30]),
    ("training", "save_every", [0, -10, "10"], [10, 100]),  # beyond max_steps: the last step
    ("training", "max_length", [0, -64], [64]),
    ("training", "num_negatives", [-1, 1.5], [0, 3]),
    (
        "training",
        "learning_rate",
        ["fast", "-1", "0", ".", "1.2.3", "1e-400", -1, 0, None],
        ["2e-5", "1.0e-3", 2e-5, 1],
    ),
    ("training", "warmup_ratio", [1, 1.5, -0.1, "0.1", None], [0, 0.5]),
    ("training", "weight_decay", [-1, "0.1", None], [0, 0.1]),
    ("training", "max_grad_norm", [0, -1, "1"], [None, 1.0]),
    ("training", "attention", ["sideways", None], ["causal", "bidirectional"]),
    ("training", "instruction_template", ["no placeholder", 3], ["Q: {instruction}"]),
    ("training", "mixed_precision", ["fp16", "bf32", None], ["bf16", "no", "auto"]),
    ("training", "save_dtype", ["float16", "fp32", None], ["float32", "bfloat16", "auto"]),
    ("training", "fsdp_layer_classes", [[3], "Qwen2DecoderLayer"], [["Qwen2DecoderLayer"], []]),
    ("training.lora", "rank", [0, -1, 2.5, True], [8]),
    ("training.lora", "alpha", [0, -1, "16"], [16, 0.5]),
    ("training.lora", "dropout", [1, -0.1, 1.5, "0.1"], [0, 0.1]),
    ("training.lora", "target_modules", ["some", [], [3]], ["all-linear", ["q_proj"]]),
    ("training.lora", "learning_rate", ["fast", "-1", "0", -1, 0], ["5e-3", 1e-4, None]),
    ("hrsa", "knn_k", [[0], [], [-5], 5], [[5, 10], [10]]),
    ("hrsa", "knn_max_tokens", [1, 0, "big"], [4096]),
    ("hrsa", "chunk_size", [0, -1], [4096]),
    ("hrsa", "bootstrap", [-1], [0, 30]),
    ("hrsa", "permutations", [-1], [0, 10]),
    ("hrsa", "ci", [0, 1, 1.5, -0.5, "high"], [0.95]),
    ("hrsa", "accumulator_bytes", [0, -1], [1 << 28]),
    ("hrsa", "products", ["fp16"], ["tf32", "fp32"]),
    ("hrsa", "accumulate", ["fp16"], ["fp32", "fp64"]),
    ("hrsa", "extra_metrics", [["nope"], ["cross_model_probe"]], [["feature_wasserstein"], []]),
    (
        "hrsa",
        "metrics",
        [{"geometry": ["rbf_cka"]}, {"function": ["linear_cka"]}, {"geometry": "linear_cka"}],
        [{"geometry": ["linear_cka"]}, {"representation": []}],
    ),
    ("report.verdicts", "knn_layers", ["none"], ["all", "transformer"]),
    ("report.verdicts", "family_aggregate", ["max"], ["mean", "median"]),
    ("report.verdicts", "probe_split", ["val"], ["dev", "test"]),
]
AGREEMENT_CASES = [
    (s, k, v, good)
    for s, k, bad, goods in AGREEMENT
    for good, vs in ((False, bad), (True, goods))
    for v in vs
]


@pytest.mark.parametrize(
    ("section", "key", "value", "good"),
    AGREEMENT_CASES,
    ids=[f"{s}.{k}={v!r}" for s, k, v, _ in AGREEMENT_CASES],
)
def test_a_value_the_library_rejects_fails_validation_naming_the_key(section, key, value, good):
    library = _library_rejects(section, key, value)
    message = validation_error(edited(f"{section}.{key}", value))
    if library is not None:
        assert message is not None, f"the job rejects it ({library}) but validation passes"
    if good:  # both accept it
        assert (library, message) == (None, None)
    else:  # validation rejects it, naming the key (the schema may be stricter than the job)
        assert message is not None and names_key(message, f"{section}.{key}"), message


def test_the_agreement_table_covers_every_key_the_library_checks():
    """Every trainer key of the schema and every HRSA and verdict setting is in the table, so a
    new key needs a row (and the library and the schema must agree on it)."""
    from hrsa.config import HRSA_OTHER_KEYS, TRAINING_OTHER_KEYS, load_schema

    props = load_schema()["properties"]
    covered = {(s, k) for s, k, _, _ in AGREEMENT}
    trainer = set(props["training"]["properties"]) - set(TRAINING_OTHER_KEYS)
    # booleans: the schema's type check is the only one there is
    trainer -= {"gradient_cache", "exclude_instruction_from_pool", "gradient_checkpointing", "fsdp"}
    assert {("training", k) for k in trainer} <= covered
    lora = set(props["training"]["properties"]["lora"]["properties"]) - {"models"}
    assert {("training.lora", k) for k in lora} <= covered
    hrsa = set(props["hrsa"]["properties"]) - set(HRSA_OTHER_KEYS) - {"seed", "device"}
    assert {("hrsa", k) for k in hrsa} <= covered
    assert {("report.verdicts", k) for k in ("knn_layers", "family_aggregate")} <= covered


# ------------------------------------------------------------------ the checks' cost in a dry-run
@pytest.fixture
def cold_process(monkeypatch, tmp_path):
    """This process as a fresh ``snakemake -n`` sees it: torch not imported, a cache in tmp."""
    monkeypatch.setattr(config_module, "_heavy_modules_loaded", lambda: False)
    monkeypatch.setenv(config_module.CHECK_CACHE_ENV, str(tmp_path / "checks"))
    return tmp_path / "checks"


def test_a_passed_check_is_remembered_and_a_failed_one_never(cold_process, monkeypatch):
    calls = []
    real = config_module.job_checks

    def counted(cfg):
        return [
            (key, reads, lambda c, _f=check, _k=key: (calls.append(_k), _f(c))[1])
            for key, reads, check in real(cfg)
        ]

    monkeypatch.setattr(config_module, "job_checks", counted)
    validate_config(copy.deepcopy(DEFAULT))
    assert sorted(calls) == ["hrsa", "report.verdicts", "training"]
    assert len(list(cold_process.iterdir())) == 3
    calls.clear()
    validate_config(copy.deepcopy(DEFAULT))  # unchanged: nothing runs
    assert calls == []
    bad = edited("training.learning_rate", "-1")
    for _ in range(2):  # a failure is not remembered
        with pytest.raises(ConfigError, match=r"config key training\.learning_rate: must be > 0"):
            validate_config(bad)
    assert calls == ["training", "training"]
    calls.clear()
    validate_config(edited("hrsa.bootstrap", 3))  # only the HRSA check reads hrsa
    assert calls == ["hrsa"]
    calls.clear()
    monkeypatch.setenv(config_module.CHECK_CACHE_ENV, "off")
    validate_config(copy.deepcopy(DEFAULT))
    assert sorted(calls) == ["hrsa", "report.verdicts", "training"]


def test_a_dry_run_of_an_unchanged_config_imports_no_torch(tmp_path):
    """The checks import torch (~2 s, more than the rest of ``snakemake -n``) only the first time a
    config is validated; rerun unchanged, validation stays torch-free."""
    script = (
        "import sys, yaml\n"
        "from hrsa.config import validate_config\n"
        "validate_config(yaml.safe_load(open('config/config.yaml')))\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, config_module.CHECK_CACHE_ENV: str(tmp_path), "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    assert [r.stdout.strip() for r in runs] == ["True", "False"]
