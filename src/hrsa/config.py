"""Configuration: JSON-schema validation with errors that name the key, plus cross-references."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .errors import ConfigError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_config(config: dict, schema_path: str | os.PathLike | None = None) -> dict:
    """Validate ``config`` against the schema and check cross-references between sections.

    Raises :class:`ConfigError` whose message starts with the offending key, e.g.
    ``config key pairs.p1.family: 'PPO' is not one of ['SFT', 'RLVR']``.
    """
    import jsonschema

    schema = yaml.safe_load(Path(schema_path or SCHEMA).read_text())
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
    _check_references(config)
    check_plan(config)
    return config


# TrainConfig's default global batch (hrsa.train.config imports torch, too slow for a Snakefile
# parse; tests/test_config.py keeps the two equal).
DEFAULT_GLOBAL_BATCH_SIZE = 32


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

        batch = int(training.get("global_batch_size", DEFAULT_GLOBAL_BATCH_SIZE))
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
        if evaluation.get("enabled") and seeds is not None:
            missing = sorted(set(evaluation.get("seeds", [0])) - set(seeds))
            if missing:
                raise ConfigError(
                    f"config key evaluation.seeds: {missing} are not training seeds "
                    f"(training.seeds: {list(seeds)}); no embedding model has them"
                )
    verdicts = (config.get("report") or {}).get("verdicts") or {}
    knn_ks = config["hrsa"].get("knn_k", [5, 10, 50])
    knn_k = verdicts.get("knn_k", 10)  # DEFAULT_THRESHOLDS["knn_k"] of hrsa.report.verdicts
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
