"""The library's defaults are the config schema's: a function called without the workflow uses the
same values as a run of the workflow (the schema is the one owner of every default)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from hrsa.config import PAPER_METRICS, load_schema, schema_default


def signature_defaults(func) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def check(defaults: dict, expected: dict[str, str]) -> None:
    """``defaults[name] == schema_default(key)`` for every ``name -> key`` (types kept apart)."""
    for name, key in expected.items():
        want = schema_default(key)
        got = defaults[name]
        assert got == want and type(got) is type(want), f"{name}: {got!r} != {key} = {want!r}"


def test_train_config_defaults_are_the_schemas():
    from hrsa.train.config import TrainConfig

    cfg = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name == "seed":  # no config key: the target's seed, one of training.seeds
            assert value == schema_default("training.seeds")[0]
        elif f.name == "adapter":  # no config key: set (from training.lora) for LoRA targets
            assert value is None
        elif f.name == "num_negatives":  # derived default: mining.num_negatives
            assert value == schema_default("training.mining.num_negatives")
        elif f.name == "fsdp_layer_classes":
            assert value == tuple(schema_default("training.fsdp_layer_classes"))
        else:
            want = schema_default(f"training.{f.name}")
            assert value == want and type(value) is type(want), f.name


def test_non_trainer_keys_are_the_schemas_other_training_keys():
    from hrsa.config import TRAINING_OTHER_KEYS
    from hrsa.train.config import NON_TRAINER_KEYS, TrainConfig, schema_other_keys

    training = set(load_schema()["properties"]["training"]["properties"])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert NON_TRAINER_KEYS == schema_other_keys() == training - fields
    assert sorted(TRAINING_OTHER_KEYS) == sorted(NON_TRAINER_KEYS)  # one list, no duplicates
    assert {"enabled", "seeds", "gpus", "data", "mining", "dynamics_datasets"} <= NON_TRAINER_KEYS
    # every trainer field but the per-target seed and adapter is a training key of the schema
    assert fields - training == {"seed", "adapter"}


def test_mining_defaults_are_the_schemas():
    from hrsa import mining

    names = ("num_negatives", "relative_margin", "range_max", "range_max_fraction")
    names += ("batch_size", "use_faiss")
    mine = {k: f"training.mining.{k}" for k in names}
    check(signature_defaults(mining.mine_negatives), mine)
    loader = {"revision": "training.mining.revision", "max_length": "training.mining.max_length"}
    check(signature_defaults(mining.mine_file), loader | {"device": "device"})
    check(signature_defaults(mining.load_mining_model), loader | {"device": "device"})


def test_evaluation_defaults_are_the_schemas():
    from hrsa.evaluate import aggregate, run

    encoder = {
        "batch_size": "evaluation.batch_size",
        "max_length": "evaluation.max_length",
        "dtype": "evaluation.dtype",
        "device": "device",
    }
    check(
        signature_defaults(run.evaluate_benchmark),
        encoder | {"seed": "evaluation.mteb_seed", "allow_missing": "evaluation.allow_missing"},
    )
    check(signature_defaults(run.benchmark_tasks), {"seed": "evaluation.mteb_seed"})
    for func in (aggregate.table1, aggregate.table1_markdown, aggregate.write_table1):
        check(signature_defaults(func), {"score": "evaluation.table1_score"})
    from hrsa.evaluate.authors import AuthorsInstructions

    unlisted = {"unlisted": "evaluation.prompts.unlisted"}
    check(signature_defaults(AuthorsInstructions.from_files), unlisted)
    check({"unlisted": AuthorsInstructions.__dataclass_fields__["unlisted"].default}, unlisted)
    pytest.importorskip("mteb")
    from hrsa.evaluate.encoder import InstructionMeanPoolEncoder

    check(signature_defaults(InstructionMeanPoolEncoder.__init__), encoder)


def test_metric_defaults_are_the_schemas():
    from hrsa.metrics import function, streaming

    probe = {"seed": "hrsa.probe.seed", "C": "hrsa.probe.C", "max_iter": "hrsa.probe.max_iter"}
    check(signature_defaults(function.cross_model_probe), probe)
    check(signature_defaults(function.probe_stores), probe)
    check(signature_defaults(function.stratified_split), {"seed": "hrsa.probe.seed"})
    assert streaming.DEFAULT_CHUNK_SIZE == schema_default("hrsa.chunk_size")
    assert streaming.DEFAULT_ACCUMULATOR_BYTES == schema_default("hrsa.accumulator_bytes")


def test_hrsa_settings_defaults_are_the_schemas():
    from hrsa.metrics.layerwise import HRSASettings

    settings = HRSASettings()
    for f in dataclasses.fields(HRSASettings):
        value = getattr(settings, f.name)
        if f.name == "device":  # derived default: the top-level device
            assert value == schema_default("device")
        elif f.name in ("knn_k", "extra_metrics"):  # lists in the schema, tuples here
            assert list(value) == schema_default(f"hrsa.{f.name}")
        elif f.name == "metrics":  # per level: the schema's default (all), the paper's metrics
            assert {lv: list(v) for lv, v in value.items()} == {
                lv: schema_default(f"hrsa.metrics.{lv}") for lv in PAPER_METRICS
            }
            assert {lv: tuple(v) for lv, v in value.items()} == PAPER_METRICS
        else:
            want = schema_default(f"hrsa.{f.name}")
            assert value == want and type(value) is type(want), f.name


def test_extraction_defaults_are_the_schemas():
    from hrsa.activations import extract

    keys = ("dtype", "attention", "max_sequences", "max_tokens", "max_length", "batch_size")
    keys += ("storage_dtype", "seed")
    expected = {k: f"activations.{k}" for k in keys} | {"device": "device"}
    check(signature_defaults(extract), expected)


def test_cli_extract_defaults_are_the_schemas(monkeypatch):
    from hrsa import cli

    captured = {}
    monkeypatch.setattr(cli, "_extract", lambda args: captured.update(vars(args)))
    assert cli.main(["extract", "--model", "m", "--texts", "t", "--store", "s"]) == 0
    keys = ("attention", "batch_size", "max_length", "max_tokens", "max_sequences")
    keys += ("storage_dtype", "seed")
    check(captured, {k: f"activations.{k}" for k in keys} | {"device": "device"})


def test_verdict_thresholds_are_the_schemas():
    from hrsa.report import verdicts

    schema = load_schema()["properties"]["report"]["properties"]["verdicts"]["properties"]
    assert verdicts.DEFAULT_THRESHOLDS == {k: node["default"] for k, node in schema.items()}
    check(
        signature_defaults(verdicts.aggregate_numbers),
        {"how": "report.verdicts.family_aggregate"},
    )


def test_activation_other_keys_are_the_schemas_keys_that_extract_does_not_take():
    from hrsa.activations import ACTIVATION_OTHER_KEYS, extract, extraction_settings

    keys = set(load_schema()["properties"]["activations"]["properties"])
    # attention is an extract() keyword, but set per stage by the plan (not from the settings)
    assert (
        set(ACTIVATION_OTHER_KEYS) == {"attention", "gpus"} and set(ACTIVATION_OTHER_KEYS) <= keys
    )
    settings = {k: schema_default(f"activations.{k}") for k in keys}
    assert set(extraction_settings(settings, "d")) == keys - set(ACTIVATION_OTHER_KEYS)
    assert keys - set(ACTIVATION_OTHER_KEYS) <= set(signature_defaults(extract))


def test_extraction_settings_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; from hrsa.activations import extraction_settings; "
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tiny_build_defaults_are_the_schemas(monkeypatch):
    from hrsa import cli, tiny

    build = {"seed": "models.<key>.build.seed", "arch": "models.<key>.build.arch"}
    check(signature_defaults(tiny.build_tiny), build)
    captured = {}
    monkeypatch.setattr(cli, "_build_tiny", lambda args: captured.update(vars(args)))
    assert cli.main(["build-tiny", "out", "--recipe", "base"]) == 0
    check(captured, build)


def test_probe_data_defaults_are_the_schemas():
    from hrsa.data import probe

    assert probe.STRATIFY_SEED == schema_default("probe_datasets.<key>.stratify.seed")


def test_training_data_defaults_are_the_schemas():
    from hrsa.data import contrastive
    from hrsa.evaluate.instructions import Instructions

    data = {
        "DEFAULT_SOURCE": "training.data.source",
        "DEFAULT_SEED": "training.data.seed",
        "DEFAULT_SCALE": "training.data.scale",
        "DEFAULT_ALLOW_SHORTFALL": "training.data.allow_shortfall",
        "DEFAULT_TEMPLATE": "training.instruction_template",
    }
    check(vars(contrastive), data)
    assert Instructions().template == schema_default("training.instruction_template")
    check(signature_defaults(contrastive.synthetic_examples), {"seed": "training.data.seed"})
    check(
        signature_defaults(contrastive.build_training_data),
        {"source": "training.data.source", "seed": "training.data.seed"},
    )
    # an empty training.data section reads as the schema's defaults
    _, report = contrastive.load_training_data({})
    check(
        report,
        {
            "source": "training.data.source",
            "seed": "training.data.seed",
            "scale": "training.data.scale",
            "allow_shortfall": "training.data.allow_shortfall",
        },
    )


def test_interval_defaults_are_the_schemas():
    from hrsa.metrics import uncertainty

    funcs = (uncertainty.percentile_interval, uncertainty.bootstrap_interval)
    for func in (*funcs, uncertainty.bootstrap_over_sequences):
        check(signature_defaults(func), {"ci": "hrsa.ci"})
