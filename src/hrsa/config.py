"""Configuration: JSON-schema validation with errors that name the key, plus cross-references."""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import ConfigError

# Package data (pyproject: tool.setuptools.package-data), so a non-editable install validates too.
SCHEMA = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


# Keys of a config section that belong to other rules than the one named after the section.
# One owner each: the plan (hrsa.plan) drops them from the rule's settings and the library's
# settings class (HRSASettings, TrainConfig) ignores them; tests keep both sides in step with the
# schema.
HRSA_OTHER_KEYS = (
    "datasets",
    "probe",
    "gpus",
    "plugins",
)  # HRSASettings takes every other key of hrsa
TRAINING_OTHER_KEYS = ("enabled", "seeds", "gpus", "data", "mining", "dynamics_datasets")


@lru_cache(maxsize=4)
def _load_schema(path: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 4x faster, same result
    return yaml.load(Path(path).read_text(), Loader=loader)  # noqa: S506 - a safe loader


def load_schema(schema_path: str | os.PathLike | None = None) -> dict:
    """The config schema (a fresh copy: callers may not change the cached one)."""
    return copy.deepcopy(_load_schema(str(schema_path or SCHEMA)))


def _filling_validator(validator_class):
    """A validator that also writes each property's schema ``default`` into the instance (as
    ``snakemake.utils.validate(set_default=True)`` does), so the validated config is complete:
    the schema is the one owner of every default. An object section with ``default: {}`` is
    created first, then its own properties' defaults are filled."""
    import jsonschema

    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def schema_default(dotted: str, schema_path: str | os.PathLike | None = None):
    """The schema's default of ``dotted`` (e.g. ``"hrsa.bootstrap"``); KeyError if it has none.

    ``<key>`` stands for any entry of a map (``"pairs.<key>.train"``). Library dataclasses and
    functions take their defaults from here, so a function called without the workflow uses the
    same values as a run of the workflow."""
    node = _load_schema(str(schema_path or SCHEMA))
    for part in dotted.split("."):
        # "<key>" steps into a map's entries, e.g. "models.<key>.build.arch"
        node = node["additionalProperties"] if part == "<key>" else node["properties"][part]
    if "default" not in node:
        raise KeyError(f"the config schema has no default for {dotted}")
    return copy.deepcopy(node["default"])


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_config(config: dict, schema_path: str | os.PathLike | None = None) -> dict:
    """Validate ``config`` against the schema, fill in the schema's defaults (in place), and
    check cross-references between sections. Returns the (now complete) config.

    Raises :class:`ConfigError` whose message starts with the offending key, e.g.
    ``config key pairs.p1.family: 'PPO' is not one of ['SFT', 'RLVR']``.
    """
    import jsonschema

    schema = load_schema(schema_path)
    # Report errors against the config as given, then fill defaults on a valid config only
    # (filling while reporting would blame a default for a user's mistake).
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(e.absolute_path))
    )
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = (
                [k for k in err.instance if k not in allowed]
                if isinstance(err.instance, dict)
                else []
            )
            key = _key(list(err.absolute_path) + extra[:1])
            raise ConfigError(f"config key {key}: unknown key (allowed here: {', '.join(allowed)})")
        if err.validator == "oneOf" and isinstance(err.instance, dict):
            raise ConfigError(
                f"config key {_key(err.absolute_path)}: give exactly one way to obtain it "
                f"({err.schema.get('description', 'see config/README.md')}): {err.message}"
            )
        raise ConfigError(f"config key {_key(err.absolute_path)}: {err.message}")
    _filling_validator(jsonschema.Draft202012Validator)(schema).validate(config)
    _check_references(config)
    check_plan(config)
    return config


def check_plan(config: dict) -> None:
    """Reject, before any job runs and naming the key, what the jobs would fail on later.

    - a training source whose planned rows cannot fill one global batch (the batch scheduler
      would drop it, or fail when none is left - after prefetch and mining have run);
    - evaluation seeds that are not training seeds (there is no such embedding model);
    - a Table 2 verdict ``knn_k`` that HRSA does not compute;
    - a probe-dataset filter, text, label or id field the source does not declare.
    """
    training = config.get("training") or {}
    if training.get("enabled"):
        from .data.contrastive import planned_rows

        batch = int(training["global_batch_size"])
        rows = planned_rows(training.get("data") or {})
        short = {source: n for source, n in rows.items() if n < batch}
        if short:
            listed = ", ".join(f"{s} ({n} rows)" for s, n in sorted(short.items()))
            raise ConfigError(
                f"config key training.data: source(s) {listed} cannot fill one global batch of "
                f"{batch} (training.global_batch_size); every batch is drawn from one source. "
                "Give them more rows (training.data.rows / scale), drop them from "
                "training.data.sources, or lower training.global_batch_size"
            )
        evaluation = config.get("evaluation") or {}
        seeds = training.get("seeds")
        if evaluation.get("enabled"):
            missing = sorted(set(evaluation["seeds"]) - set(seeds))
            if missing:
                raise ConfigError(
                    f"config key evaluation.seeds: {missing} are not training seeds "
                    f"(training.seeds: {list(seeds)}); no embedding model has them"
                )
    knn_ks = config["hrsa"]["knn_k"]
    knn_k = config["report"]["verdicts"]["knn_k"]
    if knn_k not in knn_ks:
        raise ConfigError(
            f"config key report.verdicts.knn_k: {knn_k} is not among hrsa.knn_k {knn_ks}; "
            "Table 2's local-geometry verdict would have no number"
        )
    from .data.probe import check_spec

    for key, spec in config["probe_datasets"].items():
        check_spec(key, spec)


def _check_references(config: dict) -> None:
    models = config["models"]
    for name, spec in models.items():
        init = spec.get("build", {}).get("init")
        if spec.get("build", {}).get("recipe") in ("reason", "sft") and init is None:
            raise ConfigError(
                f"config key models.{name}.build.init: recipe needs the base model key"
            )
        if init is not None and init not in models:
            raise ConfigError(
                f"config key models.{name}.build.init: {init!r} is not a key of models"
            )
    for name, pair in config["pairs"].items():
        for role in ("base", "reasoning"):
            if pair[role] not in models:
                raise ConfigError(
                    f"config key pairs.{name}.{role}: {pair[role]!r} is not a key of models"
                )
        if pair["base"] == pair["reasoning"]:
            raise ConfigError(f"config key pairs.{name}: base and reasoning are the same model")
    for ds in config["hrsa"].get("datasets", []):
        if ds not in config["probe_datasets"]:
            raise ConfigError(f"config key hrsa.datasets: {ds!r} is not a key of probe_datasets")
    analysed = list(config["hrsa"].get("datasets") or config["probe_datasets"])
    report = config.get("report") or {}
    checks = [
        ("report.main_dataset", [report.get("main_dataset")], analysed, "hrsa.datasets"),
        ("report.probe_dataset", [report.get("probe_dataset")], analysed, "hrsa.datasets"),
        ("report.figure3_pairs", report.get("figure3_pairs") or [], list(config["pairs"]), "pairs"),
        (
            "training.dynamics_datasets",
            (config.get("training") or {}).get("dynamics_datasets") or [],
            analysed,
            "hrsa.datasets",
        ),
    ]
    for key, names, allowed, where in checks:
        for name in names:
            if name is not None and name not in allowed:
                raise ConfigError(f"config key {key}: {name!r} is not one of {where} {allowed}")
    for name, spec in config["probe_datasets"].items():
        if spec.get("target", "class") == "numeric" and not spec.get("labelled", False):
            raise ConfigError(
                f"config key probe_datasets.{name}.target: numeric needs labelled: true (the "
                "ridge probe's target is the dataset's labels)"
            )
    chosen = report.get("probe_dataset")
    if chosen is not None and not config["probe_datasets"][chosen].get("labelled", False):
        raise ConfigError(
            f"config key report.probe_dataset: {chosen!r} must be labelled (labelled: true)"
        )
    probe = config["hrsa"].get("probe", {}).get("dataset")
    if probe is not None:
        if probe not in config["probe_datasets"]:
            raise ConfigError(
                f"config key hrsa.probe.dataset: {probe!r} is not a key of probe_datasets"
            )
        if not config["probe_datasets"][probe].get("labelled", False):
            raise ConfigError(
                f"config key hrsa.probe.dataset: {probe!r} must be labelled (labelled: true)"
            )
    for key, name in (("report.probe_dataset", chosen), ("hrsa.probe.dataset", probe)):
        if name is not None and config["probe_datasets"][name].get("target") == "numeric":
            raise ConfigError(
                f"config key {key}: {name!r} has a numeric target (probe_datasets.{name}.target: "
                "numeric); only class-target datasets feed the report's probe figures and "
                "Table 2, whose readout is the probe's accuracy"
            )
