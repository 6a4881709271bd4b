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
    return config


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
