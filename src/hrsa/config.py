"""Configuration: JSON-schema validation with errors that name the key, plus cross-references."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import ConfigError, HRSAError

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
TRAINING_OTHER_KEYS = ("enabled", "seeds", "gpus", "data", "mining", "dynamics_datasets", "lora")
#: the paper's own metrics per level (computed by the streaming engine and the probe job), which
#: ``hrsa.metrics`` selects from; the schema's default selects them all. Here, torch-free, so that
#: the plan and the validation read them without importing the engine.
PAPER_METRICS = {
    "representation": ("dimension_wise_correlation", "procrustes"),
    "geometry": ("linear_cka", "knn_overlap"),
    "function": ("cross_model_probe",),
}
#: the keys of a LoRA adapter (``training.lora`` without ``models`` and ``learning_rate``);
#: here so that the plan reads them without importing torch (hrsa.train imports it)
LORA_ADAPTER_KEYS = ("rank", "alpha", "dropout", "target_modules")


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
    check_jobs(config)
    return config


def check_plan(config: dict) -> None:
    """Reject, before any job runs and naming the key, what the jobs would fail on later.

    - a training source whose planned rows cannot fill one global batch (the batch scheduler
      would drop it, or fail when none is left - after prefetch and mining have run);
    - evaluation seeds that are not training seeds (there is no such embedding model), and an
      ``analysis_seed`` that is not one (the plan would train that seed silently);
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
        if config.get("analysis_seed", 0) not in seeds:
            raise ConfigError.at(
                "analysis_seed",
                f"{config['analysis_seed']} is not one of training.seeds {list(seeds)}: HRSA "
                "analyses the embedding models of this seed, and only training.seeds are trained "
                "(add it to training.seeds to train it)",
            )
        if evaluation.get("enabled"):
            missing = sorted(set(evaluation["seeds"]) - set(seeds))
            if missing:
                raise ConfigError(
                    f"config key evaluation.seeds: {missing} are not training seeds "
                    f"(training.seeds: {list(seeds)}); no embedding model has them"
                )
    selected = config["hrsa"]["metrics"]
    knn_ks = config["hrsa"]["knn_k"]
    knn_k = config["report"]["verdicts"]["knn_k"]
    knn_selected = "knn_overlap" in selected.get("geometry", ["knn_overlap"])
    if knn_selected and knn_k not in knn_ks:
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
        recipe = spec.get("build", {}).get("recipe")
        if recipe in ("reason", "sft", "rlvr", "task_sft") and init is None:
            raise ConfigError(
                f"config key models.{name}.build.init: recipe needs the base model key"
            )
        if init is not None and init not in models:
            raise ConfigError(
                f"config key models.{name}.build.init: {init!r} is not a key of models"
            )
        if recipe in ("rlvr", "task_sft") and not models[init].get("build", {}).get("task"):
            raise ConfigError(
                f"config key models.{name}.build.init: recipe {recipe} trains on its base's "
                f"task, but models.{init}.build has no `task` (e.g. task: max3)"
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
    for name in report.get("dataset_labels") or {}:
        if name not in config["probe_datasets"]:
            raise ConfigError.at(
                f"report.dataset_labels.{name}",
                f"not a key of probe_datasets {list(config['probe_datasets'])} (its label would "
                "never be shown)",
            )
    evaluation = config.get("evaluation") or {}
    if evaluation:
        from .evaluate.names import slugs_to_names

        try:
            benchmarks = list(slugs_to_names(evaluation["benchmarks"]).values())
        except ValueError as exc:  # two names with one slug (one results path)
            raise ConfigError.at("evaluation.benchmarks", str(exc)) from exc
        for name in evaluation.get("tasks") or {}:
            if name not in benchmarks:
                raise ConfigError.at(
                    f"evaluation.tasks.{name}",
                    f"not one of evaluation.benchmarks {benchmarks} (its tasks would never run)",
                )
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


# ---------------------------------------------------------------------- the jobs' own checks
#: Environment variable: the directory remembering passed job checks (see :func:`check_jobs`);
#: ``off`` (or empty) remembers nothing.
CHECK_CACHE_ENV = "HRSA_CHECK_CACHE"
_CHECK_CACHE_MAX = 512  # remembered checks kept (the oldest are dropped beyond that)


def _check_training_jobs(config: dict) -> None:
    """What every training job does first: ``TrainConfig.from_mapping`` of its settings (the
    full model's per seed and, with ``training.lora.models``, the LoRA model's)."""
    from .plan import Plan
    from .train.config import TrainConfig

    plan = Plan(config)
    for seed in plan.train_seeds:
        TrainConfig.from_mapping(plan.trainer_settings(seed))
        if not plan.lora_models():
            continue
        try:
            TrainConfig.from_mapping(plan.trainer_settings(seed, lora=True))
        except ConfigError as exc:
            # the LoRA job's learning rate is training.lora.learning_rate when that is set
            said = "config key training.learning_rate: "
            if plan.lora["learning_rate"] is None or not str(exc).startswith(said):
                raise
            raise ConfigError.at("training.lora.learning_rate", str(exc)[len(said) :]) from exc


def _check_hrsa_jobs(config: dict) -> None:
    """What every HRSA job does before it reads a store: import the plug-ins
    (``hrsa.plugins``), ``HRSASettings.from_config`` of its settings, and look up each
    ``hrsa.extra_metrics`` entry as a subsample metric; what the probe job does: look up each
    ``hrsa.probe.extra_metrics`` entry as a labelled metric."""
    from .metrics.layerwise import HRSASettings
    from .metrics.registry import labelled_metric, load_plugins, subsample_metric
    from .plan import Plan

    plan = Plan(config)
    load_plugins(plan.hrsa_plugins())
    settings = HRSASettings.from_config(plan.hrsa_settings())
    for i, name in enumerate(settings.extra_metrics):
        subsample_metric(name, key=f"hrsa.extra_metrics[{i}]")
    for i, name in enumerate(plan.probe_extra_metrics()):
        labelled_metric(name, key=f"hrsa.probe.extra_metrics[{i}]")
    if plan.probe_extra_metrics() and not settings.computes("cross_model_probe"):
        raise ConfigError.at(
            "hrsa.probe.extra_metrics",
            f"{plan.probe_extra_metrics()} run in the cross-model probe's job, which "
            "hrsa.metrics.function leaves out; add cross_model_probe there or empty this list",
        )


def _check_report_jobs(config: dict) -> None:
    """What the Table 2 job does first: ``thresholds_from_config`` of ``report.verdicts``."""
    from .plan import Plan
    from .report.verdicts import thresholds_from_config

    thresholds_from_config(Plan(config).verdict_thresholds())


def job_checks(config: dict) -> list[tuple[str, object, Callable[[dict], None]]]:
    """``(key, reads, check)`` of every settings object a job builds from the validated config:
    ``check(config)`` runs the library's own validation of it (the code the job runs, not a copy);
    ``reads`` is everything the check's verdict depends on besides this package's code (None:
    not known, e.g. a plug-in module imported by name)."""
    from .plan import Plan

    plan = Plan(config)
    plugins = []
    for entry in plan.hrsa_plugins():
        path = Path(entry)
        if not entry.endswith(".py"):
            plugins = None  # a module by name: its code is not known here
            break
        content = path.read_bytes() if path.is_file() else b""
        plugins.append([entry, hashlib.sha256(content).hexdigest()])
    hrsa_reads = (
        None
        if plugins is None
        else {
            "settings": plan.hrsa_settings(),
            "probe": plan.probe_extra_metrics(),
            "plugins": plugins,
        }
    )
    checks = [
        ("hrsa", hrsa_reads, _check_hrsa_jobs),
        ("report.verdicts", plan.verdict_thresholds(), _check_report_jobs),
    ]
    if plan.training_enabled:
        reads = {"training": config["training"], "lora": bool(plan.lora_models())}
        checks.append(("training", reads, _check_training_jobs))
    return checks


def _check_cache_dir() -> Path | None:
    value = os.environ.get(CHECK_CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "no", "false") else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hrsa-workflow" / "config-checks"


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """A hash of this package's code and schema (~5 ms): a remembered check is stale when any
    of it changes."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")) + sorted((root / "schemas").glob("*.yaml")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _heavy_modules_loaded() -> bool:
    """torch is imported already (in a job, in tests): running the checks costs next to nothing."""
    return "torch" in sys.modules


def _remember(marker: Path) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        entries = list(marker.parent.iterdir())
        if len(entries) > _CHECK_CACHE_MAX:
            entries.sort(key=lambda p: p.stat().st_mtime)
            for old in entries[: len(entries) - _CHECK_CACHE_MAX // 2]:
                old.unlink(missing_ok=True)
    except OSError:  # a read-only or shared cache: the check simply runs again next time
        pass


def check_jobs(config: dict) -> None:
    """Run, before any job, the library's own checks of the settings each job builds
    (:func:`job_checks`: ``TrainConfig``, ``HRSASettings``, Table 2's thresholds), so a setting a
    job would reject fails ``snakemake -n`` naming its key, before Snakemake deletes the previous
    outputs of that job.

    Those checks live in modules that import torch (~2 s, more than the rest of a dry-run). A
    check that passed is therefore remembered, keyed by what it reads and a hash of this
    package's code, in ``$HRSA_CHECK_CACHE`` (default ``$XDG_CACHE_HOME/hrsa-workflow/
    config-checks``; ``off`` disables it): a dry-run of an unchanged config imports no torch.
    Failures are never remembered. Where torch is loaded already, the checks just run."""
    cache = None if _heavy_modules_loaded() else _check_cache_dir()
    for key, reads, check in job_checks(config):
        marker = None
        if cache is not None and reads is not None:
            text = json.dumps(reads, sort_keys=True, default=repr)
            name = f"{_code_fingerprint()}\0{check.__name__}\0{text}"
            marker = cache / hashlib.sha256(name.encode()).hexdigest()
            if marker.exists():
                continue
        try:
            check(config)
        except HRSAError:
            raise
        except (TypeError, ValueError, KeyError) as exc:  # a check that did not word its error
            raise ConfigError.at(key, f"rejected by the job's own check: {exc!r}") from exc
        if marker is not None:
            _remember(marker)
