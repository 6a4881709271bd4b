"""The workflow's plan: what runs, on which files, with which settings - from the config alone.

Every decision the Snakemake rules need lives here as a pure function of the validated config
(``hrsa.config.validate_config`` has filled in the schema's defaults, so nothing here restates a
default): the stages of each pair, the analysis units, every target, the path templates and the
settings each rule passes to its script. The ``.smk`` files only declare rules and call a
:class:`Plan`; the tests test the plan directly.

Two inputs besides the config are explicit: ``exists`` (whether a configured ``source`` is a
local directory rather than a hub id; :func:`os.path.exists` by default) and ``basedir`` (the
workflow's directory, where relative resource files such as ``config/prompts.yaml`` are found
when the working directory is elsewhere).

Data flow: config -> :class:`Plan` -> rules (``rules/*.smk``) -> scripts (``workflow/scripts``)
-> library -> ``results/`` (see docs/architecture.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

from .config import HRSA_OTHER_KEYS, LORA_ADAPTER_KEYS, PAPER_METRICS, TRAINING_OTHER_KEYS
from .errors import ConfigError

STAGES_MAIN = ("backbone", "emb")
ROLES = ("base", "reasoning")

# Path templates (Snakemake wildcards in braces). One place, used by rules and targets alike.
MODEL_DIR = "results/models/{model}"
PREFETCH_MODEL = "results/prefetch/models/{model}.json"
PREFETCH_EMBEDDING = "results/prefetch/embeddings/{model}.json"
PREFETCH_MTEB = "results/prefetch/mteb/{bench}.json"
PREFETCH_DONE = "results/prefetch/done"
# the authors' instruction files (evaluation.prompts.authors / authors_bright at a URL): the
# downloaded file and its record (url, sha256)
PREFETCH_PROMPTS = "results/prefetch/prompts/{source}.raw"
PREFETCH_PROMPTS_RECORD = "results/prefetch/prompts/{source}.json"
PROBE_DATA = "results/data/probe/{dataset}.jsonl"
TRAIN_DATA = "results/data/train/contrastive.jsonl"
TRAIN_DATA_REPORT = "results/data/train/contrastive.jsonl.report.json"
MINED_DATA = "results/data/train/mined.jsonl"
MINED_DATA_REPORT = "results/data/train/mined.jsonl.report.json"
MINING_CACHE = "results/data/train/mining-cache"
STORE = "results/activations/{model}/{stage}/{dataset}"
PAIR_CHECK = "results/checks/{pair}/{stage}/{dataset}.json"
HRSA_DIR = "results/hrsa/{pair}/{stage}/{dataset}"
EMBEDDING_DIR = "results/embeddings/{model}/seed{seed}"
LORA_EMBEDDING_DIR = "results/embeddings/{model}/lora-seed{seed}"
MTEB_SCORES = "results/mteb/{model}/{stage}/seed{seed}/{bench}.csv"
MTEB_CACHE = "results/mteb/{model}/{stage}/seed{seed}/{bench}"
MTEB_SUMMARY = "results/mteb/summary.csv"
PROBE_METRICS = "probe_metrics.csv"
MTEB_INSTRUCTIONS = "results/mteb/{model}/{stage}/seed{seed}/{bench}.instructions.csv"
TABLE1 = "results/mteb/table1.csv"
INSTRUCTIONS = "results/mteb/instructions.csv"
REPORT = "results/report"

# Report figures and tables drawn per metric/stage (paper Figures 6-13, Tables 12-13).
LAYER_GRIDS = {
    "6": ("dimension_wise_correlation", "backbone"),
    "7": ("dimension_wise_correlation", "emb"),
    "8": ("linear_cka", "backbone"),
    "9": ("linear_cka", "emb"),
    "10": ("knn_overlap", "backbone"),
    "11": ("knn_overlap", "emb"),
}
PROBE_GRIDS = {"12": "backbone", "13": "emb"}
#: the paper's metrics drawn by Figure 3, Figure 5 and the per-pair figures: each is drawn while
#: hrsa.metrics selects one of them (the panels of the others say "not computed")
FIGURE3_METRICS = ("dimension_wise_correlation", "linear_cka")
DYNAMICS_METRICS = ("linear_cka", "dimension_wise_correlation", "procrustes", "knn_overlap")
PAIR_FIGURE_METRICS = ("dimension_wise_correlation", "linear_cka", "knn_overlap")
#: the figure of hrsa.extra_metrics (Table 8 alternatives and plug-ins), under REPORT
TABLE8_FIGURE = "figure_table8"
#: what RL and SFT did on the tiny models' verifiable task (rlvr / task_sft build records)
TASK_FIGURE = "figure_task_training"
TASK_RECIPES = ("rlvr", "task_sft")
#: Table 2's companion: the RLVR family against the SFT family (hrsa.report.contrast), under REPORT
RLVR_VS_SFT = "table2_rlvr_vs_sft"
H_INV_TABLES = {"12": "backbone", "13": "emb"}
# The report's appendix to Table 1: the instruction of every evaluated task and its source.
INSTRUCTIONS_APPENDIX = f"{REPORT}/instructions"

# CoT traces generated and judged by this workflow (hrsa.cot, rules/cot.smk), per source key of
# cot_generation.sources; the request caches live in cot_generation.cache_dir (not outputs).
COT_PROBLEMS = "results/cot/problems/{cot_source}.jsonl"
COT_GENERATED = "results/cot/generated/{cot_source}.jsonl"
COT_JUDGED = "results/cot/judged/{cot_source}.jsonl"
COT_STATS = "results/cot/judged/{cot_source}.json"
COT_ESTIMATE = "results/cot/estimate.json"
COT_ROLES = ("generator", "judge")
#: the generated CoT dataset's card, next to Table 11 (under REPORT)
COT_CARD = "cot_card"
# what selects a source's problems (the rest of a source's keys changes no problem)
COT_SOURCE_RESULT_KEYS = ("reasoning_budget", "max_tokens", "label", "paper_total", "paper_valid")

# Keys of the mapping form of evaluation.prompts naming one of the authors' instruction files
# (hrsa.evaluate.authors.KINDS), in lookup order.
AUTHORS_PROMPTS = ("authors", "authors_bright")


def alternatives(names) -> str:
    """A wildcard constraint matching exactly ``names`` (nothing when there are none)."""
    return "|".join(re.escape(str(n)) for n in names) if names else "(?!)"


def normalised(value):
    """``value`` with every mapping's keys sorted, recursively (lists keep their order).

    Snakemake records a job's params as their ``repr`` and reruns the job when it changes; a
    dict's repr follows insertion order, so without this, reordering keys in a config file
    would rerun jobs whose settings did not change."""
    if isinstance(value, Mapping):
        return {k: normalised(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [normalised(v) for v in value]
    return value


def ordered_table(mapping: Mapping) -> dict:
    """A config table whose key order means something (pairs and models: the order of rows in
    tables and figures) with each entry normalised."""
    return {key: normalised(value) for key, value in mapping.items()}


def _stage_step(stage: str) -> int | None:
    return int(stage[4:]) if stage.startswith("step") else None


@dataclass(frozen=True)
class Unit:
    """One analysis unit: a pair at a stage on a dataset."""

    pair: str
    stage: str
    dataset: str


class Plan:
    """Everything the rules need, computed from a validated (default-filled) config."""

    def __init__(
        self,
        config: Mapping,
        *,
        exists: Callable[[str], bool] | None = None,
        basedir: str | os.PathLike | None = None,
    ):
        self.config = config
        self._exists = exists or (lambda p: os.path.exists(os.path.expanduser(p)))
        self.basedir = os.fspath(basedir) if basedir is not None else None

    # ------------------------------------------------------------------ config tables
    @cached_property
    def models(self) -> list[str]:
        return list(self.config["models"])

    @cached_property
    def pairs(self) -> list[str]:
        return list(self.config["pairs"])

    @cached_property
    def probe_datasets(self) -> list[str]:
        return list(self.config["probe_datasets"])

    @cached_property
    def hrsa_datasets(self) -> list[str]:
        return list(self.config["hrsa"].get("datasets") or self.probe_datasets)

    @cached_property
    def labelled_datasets(self) -> list[str]:
        """HRSA datasets with labels (the cross-model probe's)."""
        return [d for d in self.hrsa_datasets if self.config["probe_datasets"][d]["labelled"]]

    @property
    def threads(self) -> int:
        return int(self.config["threads"])

    @property
    def device(self) -> str:
        return self.config["device"]

    @property
    def analysis_seed(self) -> int:
        return int(self.config["analysis_seed"])

    @property
    def training(self) -> Mapping:
        return self.config["training"]

    @property
    def evaluation(self) -> Mapping:
        return self.config["evaluation"]

    @property
    def training_enabled(self) -> bool:
        return bool(self.training["enabled"])

    @property
    def evaluation_enabled(self) -> bool:
        return bool(self.evaluation["enabled"])

    @property
    def hub_cache_dir(self) -> str | None:
        return self.config["hub"]["cache_dir"]

    @property
    def data_mirror(self) -> str | None:
        return self.config["data_mirror"]

    def wildcard_constraints(self) -> dict[str, str]:
        return {
            "model": alternatives(self.models),
            "pair": alternatives(self.pairs),
            "dataset": alternatives(self.probe_datasets),
            "stage": r"backbone|emb|step\d+",
            "seed": r"\d+",
            "cot_source": alternatives(self.cot_sources()),
        }

    # ------------------------------------------------------------------ models
    def model_spec(self, model: str) -> Mapping:
        return self.config["models"][model]

    def is_built(self, model: str) -> bool:
        return "build" in self.model_spec(model)

    def model_dir(self, model: str) -> str:
        """Local directory of a built (tiny) model."""
        return MODEL_DIR.format(model=model)

    def build_settings(self, model: str) -> dict:
        """``models.<model>.build``; the chat recipe's ``prompts`` defaults to
        ``cot_generation.prompts``."""
        build = dict(self.model_spec(model)["build"])
        if build["recipe"] == "chat":
            build["prompts"] = self._resource(build.get("prompts") or self.cot["prompts"])
        return normalised(build)

    def build_prompts_input(self, model: str) -> list[str]:
        """The CoT prompts file a chat recipe trains on (an edit rebuilds the model)."""
        build = self.build_settings(model)
        return [build["prompts"]] if "prompts" in build else []

    def build_init_input(self, model: str) -> str | list:
        """A derived tiny model starts from its base's directory (none: an empty input)."""
        init = self.model_spec(model).get("build", {}).get("init")
        return self.model_dir(init) if init is not None else []

    def model_source(self, model: str) -> str:
        """What a loader gets: a local directory, or a hub id (resolved from the prefetched cache)."""
        return self.model_dir(model) if self.is_built(model) else self.model_spec(model)["source"]

    def model_revision(self, model: str) -> str | None:
        return self.model_spec(model).get("revision")

    def is_local(self, source: str) -> bool:
        return self._exists(source)

    def model_input(self, model: str) -> str:
        """The file dependency standing for a model: its build directory, its local source
        directory, or its prefetch record."""
        if self.is_built(model):
            return self.model_dir(model)
        source = self.model_spec(model)["source"]
        return source if self.is_local(source) else PREFETCH_MODEL.format(model=model)

    def prefetched_models(self) -> list[str]:
        return [
            m
            for m in self.models
            if not self.is_built(m) and not self.is_local(self.model_spec(m)["source"])
        ]

    # ------------------------------------------------------------------ embedding models
    def embedding_dir(self, model: str, seed: int | str | None = None) -> str:
        """Directory of a TRAINED embedding model (never of a published one)."""
        return EMBEDDING_DIR.format(model=model, seed=self.analysis_seed if seed is None else seed)

    def embedding_spec(self, model: str) -> Mapping | None:
        """A model's published embedding model ({source, revision}) replacing training, or None."""
        return self.model_spec(model).get("embedding_source")

    def is_published(self, model: str) -> bool:
        return self.embedding_spec(model) is not None

    def published_models(self) -> list[str]:
        return [m for m in self.models if self.is_published(m)]

    def published_input(self, model: str) -> str:
        """The file dependency of a published embedding model: its local directory or its
        prefetch record."""
        source = self.embedding_spec(model)["source"]
        return source if self.is_local(source) else PREFETCH_EMBEDDING.format(model=model)

    def emb_model_input(self, model: str, seed: int | str | None = None) -> str:
        """The embedding model of ``model`` as an input: the published one, else the trained one."""
        if self.is_published(model):
            return self.published_input(model)
        return self.embedding_dir(model, seed)

    def emb_model_source(self, model: str, seed: int | str | None = None) -> str:
        if self.is_published(model):
            return self.embedding_spec(model)["source"]
        return self.embedding_dir(model, seed)

    def emb_model_revision(self, model: str) -> str | None:
        return self.embedding_spec(model).get("revision") if self.is_published(model) else None

    # ------------------------------------------------------------------ pairs and stages
    def members(self, pair: str) -> list[str]:
        return [self.config["pairs"][pair][role] for role in ROLES]

    def pair_trains(self, pair: str) -> bool:
        """The pair asks for embedding models to be trained (training.enabled and its `train`)."""
        return self.training_enabled and bool(self.config["pairs"][pair]["train"])

    @cached_property
    def _trained(self) -> list[str]:
        return sorted(
            {
                m
                for p in self.pairs
                if self.pair_trains(p)
                for m in self.members(p)
                if not self.is_published(m)
            }
        )

    def trained_models(self) -> list[str]:
        """Backbones trained into embedding models: members of every pair that trains, except
        those with a published embedding model."""
        return list(self._trained)

    def has_embedding_model(self, model: str) -> bool:
        return self.is_published(model) or model in self._trained

    def pair_has_embeddings(self, pair: str) -> bool:
        """Each member is trained or has a published embedding model."""
        return all(self.has_embedding_model(m) for m in self.members(pair))

    def pair_has_dynamics(self, pair: str) -> bool:
        """Training snapshots exist for both members: both trained (none published)."""
        return all(m in self._trained for m in self.members(pair))

    def embedding_models(self) -> list[str]:
        """Every model whose embedding model is analysed and evaluated (trained or published)."""
        return sorted(
            {m for p in self.pairs if self.pair_has_embeddings(p) for m in self.members(p)}
        )

    def dynamics_steps(self) -> list[int]:
        """Snapshot steps analysed for training dynamics (step 0 is the backbone itself)."""
        if not self.training_enabled:
            return []
        every, last = int(self.training["save_every"]), int(self.training["max_steps"])
        return [0, *range(every, last, every), last]

    def dynamics_datasets(self) -> list[str]:
        return list(self.training.get("dynamics_datasets") or self.hrsa_datasets[:1])

    def pair_stages(self, pair: str, dynamics: bool = False) -> list[str]:
        """Stages analysed for a pair: the backbones, their embedding models (when both exist)
        and, with ``dynamics``, the snapshots step{N>0} (needs both members trained)."""
        stages = ["backbone"]
        if self.pair_has_embeddings(pair):
            stages.append("emb")
            if dynamics and self.pair_has_dynamics(pair):
                stages += [f"step{s}" for s in self.dynamics_steps() if s > 0]
        return stages

    def analysis_units(self, dynamics: bool = True) -> list[Unit]:
        units = []
        for pair in self.pairs:
            main = self.pair_stages(pair)
            units += [Unit(pair, stage, d) for stage in main for d in self.hrsa_datasets]
            if dynamics:
                for stage in self.pair_stages(pair, dynamics=True)[len(main) :]:
                    units += [Unit(pair, stage, d) for d in self.dynamics_datasets()]
        return units

    def store_path(self, model: str, stage: str, dataset: str) -> str:
        return STORE.format(model=model, stage=stage, dataset=dataset)

    def pair_store(self, pair: str, stage: str, dataset: str, role: str) -> str:
        return self.store_path(self.config["pairs"][pair][role], stage, dataset)

    # ------------------------------------------------------------------ extraction
    def _no_snapshots(self, model: str, stage: str) -> None:
        if self.is_published(model):
            raise ConfigError(
                f"config key models.{model}.embedding_source: {stage} of {model} asked for, but "
                "a published embedding model has no training snapshots"
            )

    def stage_model_input(self, model: str, stage: str) -> str:
        """Input of an extraction job: the backbone, the embedding model, or its snapshots."""
        if stage in ("backbone", "step0"):
            return self.model_input(model)
        if stage == "emb":
            return self.emb_model_input(model)
        self._no_snapshots(model, stage)
        return self.embedding_dir(model)

    def stage_model_path(self, model: str, stage: str) -> str:
        if stage in ("backbone", "step0"):
            return self.model_source(model)
        if stage == "emb":
            return self.emb_model_source(model)
        self._no_snapshots(model, stage)
        return f"{self.embedding_dir(model)}/checkpoints/step{_stage_step(stage)}"

    def stage_model_revision(self, model: str, stage: str) -> str | None:
        if stage in ("backbone", "step0"):
            return self.model_revision(model)
        return self.emb_model_revision(model)

    def extraction_attention(self, stage: str) -> str:
        """Backbones use ``activations.attention``; embedding models are always bidirectional."""
        if stage in ("backbone", "step0"):
            return self.config["activations"]["attention"]
        return "bidirectional"

    def extraction_settings(self, dataset: str) -> dict:
        """Keyword arguments of ``hrsa.activations.extract`` for ``dataset``: labelled datasets
        (the probe's) keep every row whatever the caps."""
        from .activations import extraction_settings

        keep_all = [d for d, s in self.config["probe_datasets"].items() if s["labelled"]]
        return normalised(extraction_settings(self.config["activations"], dataset, keep_all))

    @property
    def extraction_gpus(self) -> int:
        return int(self.config["activations"]["gpus"])

    def extraction_targets(self) -> list[str]:
        """One store per distinct (model, stage, dataset): shared backbones are extracted once."""
        return sorted(
            {
                self.pair_store(u.pair, u.stage, u.dataset, role)
                for u in self.analysis_units()
                for role in ROLES
            }
        )

    def pair_check_targets(self) -> list[str]:
        return [PAIR_CHECK.format(**vars(u)) for u in self.analysis_units()]

    # ------------------------------------------------------------------ probe data
    def probe_spec(self, dataset: str) -> dict:
        """The spec the probe-data rule materialises. ``target`` says how the labels are
        probed, not what the data is: it is left out, so that setting it never remakes the
        data (and every activation store after it). A ``traces: generated`` dataset gets
        ``generated_files``: the judged files it reads (:meth:`probe_generated`)."""
        spec = self.config["probe_datasets"][dataset]
        spec = {k: v for k, v in spec.items() if k != "target"}
        generated = self.probe_generated(dataset)
        if generated is not None:  # the judged files it reads (traces: generated)
            spec["generated_files"] = generated
        return normalised(spec)

    def probe_target(self, dataset: str) -> str:
        """``probe_datasets.<dataset>.target``: ``class`` (logistic-regression probe) or
        ``numeric`` (ridge-regression probe)."""
        return str(self.config["probe_datasets"][dataset]["target"])

    def probe_local_input(self, dataset: str) -> list[str]:
        """The files a probe dataset is read from: a local file, or the judged files of the
        generated CoT traces (``traces: generated``)."""
        generated = self.probe_generated(dataset)
        if generated is not None:
            return [f for files in generated.values() for f in files]
        local = self.config["probe_datasets"][dataset].get("local")
        return [local] if local else []

    def probe_generated(self, dataset: str) -> dict[str, list[str]] | None:
        """``{tier: judged files}`` of a ``traces: generated`` dataset's tiers (None for any
        other dataset); a tier no source of ``cot_generation.sources`` has is a config error."""
        spec = self.config["probe_datasets"][dataset]
        if spec.get("traces") != "generated":
            return None
        from .data.probe import REGISTRY

        tiers = list(spec.get("tiers") or REGISTRY["cot"].default_tiers)
        files = {t: self.cot_judged_files(t) for t in tiers}
        have = {self.cot["sources"][s]["tier"] for s in self.cot_sources()}
        if not any(files.values()):
            raise ConfigError.at(
                f"probe_datasets.{dataset}.traces",
                f"generated traces of the tiers {tiers} need cot_generation.sources of those "
                f"tiers (configured: {sorted(have) or 'no source'})",
            )
        return {t: f for t, f in files.items() if f}

    def data_cache_dir(self) -> str:
        """Where files at URLs are cached: hub.cache_dir, else results/prefetch/data."""
        return self.hub_cache_dir or "results/prefetch/data"

    # ------------------------------------------------------------------ CoT generation
    @property
    def cot(self) -> Mapping:
        return self.config["cot_generation"]

    def cot_sources(self) -> list[str]:
        """Keys of cot_generation.sources, in configured order (Table 11's rows)."""
        return list(self.cot["sources"])

    def cot_enabled(self) -> bool:
        """CoT generation is configured: at least one source."""
        return bool(self.cot["sources"])

    def cot_source_spec(self, source: str) -> dict:
        """What selects ``source``'s problems (``cot_problems``' params): its spec without the
        keys that change no problem (token limits, label, the paper's counts)."""
        spec = self.cot["sources"][source]
        return normalised({k: v for k, v in spec.items() if k not in COT_SOURCE_RESULT_KEYS})

    def cot_source_info(self, source: str) -> dict:
        """The whole spec of ``source`` with its key and label (the judge's statistics)."""
        spec = dict(self.cot["sources"][source])
        spec.setdefault("label", source)
        return normalised({"key": source, **spec})

    def cot_problems_input(self, source: str) -> list[str]:
        local = self.cot["sources"][source].get("local")
        return [local] if local else []

    def cot_prompts_file(self) -> str:
        return self._resource(self.cot["prompts"])

    def cot_cache_file(self, source: str, step: str) -> str:
        """The request cache of ``source``'s ``step`` (``generate`` or ``judge``)."""
        return os.path.join(self.cot["cache_dir"], f"{source}.{step}.jsonl")

    def cot_judged_files(self, tier: str | None = None) -> list[str]:
        return [
            COT_JUDGED.format(cot_source=s)
            for s in self.cot_sources()
            if tier is None or self.cot["sources"][s]["tier"] == tier
        ]

    def cot_stats_files(self) -> list[str]:
        return [COT_STATS.format(cot_source=s) for s in self.cot_sources()]

    def _cot_served(self, role: str) -> bool:
        return self.cot[role]["serve"] != "external"

    def cot_is_local_rule(self, role: str) -> bool:
        """An external endpoint is called from the submit node (which has internet); a served
        model runs as a (GPU) job."""
        return not self._cot_served(role)

    def cot_endpoint_input(self, role: str) -> list[str]:
        """A served model's file dependency: a models key's directory or prefetch record, or a
        local directory; nothing for a hub id or an external endpoint."""
        if not self._cot_served(role):
            return []
        model = self.cot[role]["model"]
        if model in self.config["models"]:
            return [self.model_input(model)]
        return [model] if self.is_local(model) else []

    def cot_resources(self, role: str) -> dict:
        """The job's resources: the vLLM server's GPUs, memory and runtime (slurm_vllm); no
        GPU otherwise."""
        if self.cot[role]["serve"] != "slurm_vllm":
            return {"gpu": 0}
        vllm = self.cot[role]["vllm"]
        return {
            "gpu": int(vllm["gpus"]),
            "mem_mb": int(vllm["mem_mb"]),
            "runtime": int(vllm["runtime"]),
        }

    def cot_requests(self) -> dict:
        return normalised(self.cot["requests"])

    def cot_endpoint(self, role: str, source: str | None = None) -> dict:
        """An endpoint's settings for ``hrsa.cot.pipeline``: where it runs, the model (a models
        key resolved to its directory or hub id and revision), what each request carries, and
        for the generator the reasoning budget - ``source``'s own limits where it sets them."""
        e = self.cot[role]
        model, serve = e["model"], e["serve"]
        settings = {
            "role": role,
            "serve": serve,
            "model": model,
            "api_key_env": e["api_key_env"],
            "price_input": e["price_input"],
            "price_output": e["price_output"],
            "request": {
                k: e[k]
                for k in (
                    "temperature",
                    "top_p",
                    "top_k",
                    "max_tokens",
                    "seed",
                    "thinking",
                    "thinking_switch",
                    "extra_body",
                )
            },
        }
        revision, tokenizer = e["revision"], e["tokenizer"]
        if serve == "external":
            if not e["base_url"]:
                raise ConfigError.at(
                    f"cot_generation.{role}.base_url",
                    "serve: external needs the endpoint's URL, e.g. http://host:8000/v1",
                )
            settings["base_url"] = e["base_url"]
        else:
            source_dir = model
            if model in self.config["models"]:
                source_dir, revision = self.model_source(model), self.model_revision(model)
            section = "local" if serve == "local" else "vllm"
            settings.update({"source": source_dir, "served_name": model, section: e[section]})
            tokenizer = tokenizer or source_dir
        settings["revision"] = revision
        settings["model_id"] = f"{model}@{revision}" if revision else model
        settings["tokenizer"] = tokenizer
        if role == "generator":
            settings["reasoning_budget"] = e["reasoning_budget"]
            settings["budget_measure"] = e["budget_measure"]
            spec = self.cot["sources"].get(source, {}) if source is not None else {}
            if "reasoning_budget" in spec:
                settings["reasoning_budget"] = spec["reasoning_budget"]
            if "max_tokens" in spec:
                settings["request"]["max_tokens"] = spec["max_tokens"]
        else:
            settings["valid_if_contains"] = e["valid_if_contains"]
        return normalised(settings)

    def cot_estimate_settings(self) -> dict:
        """Params of ``cot_estimate``: every source's generator settings, the judge's, the
        caches."""
        return {
            "problems": self.cot_problem_files(),
            "generator": {s: self.cot_endpoint("generator", s) for s in self.cot_sources()},
            "judge": self.cot_endpoint("judge"),
            "caches": {
                s: {step: self.cot_cache_file(s, step) for step in ("generate", "judge")}
                for s in self.cot_sources()
            },
        }

    def cot_problem_files(self) -> dict[str, str]:
        return {s: COT_PROBLEMS.format(cot_source=s) for s in self.cot_sources()}

    # ------------------------------------------------------------------ training
    @property
    def train_seeds(self) -> list[int]:
        return [int(s) for s in self.training["seeds"]]

    @property
    def train_gpus(self) -> int:
        return int(self.training["gpus"])

    @property
    def mining(self) -> Mapping:
        return self.training["mining"]

    @property
    def mining_enabled(self) -> bool:
        return bool(self.mining["enabled"])

    def training_targets(self) -> list[str]:
        if not self.training_enabled:
            return []
        full = [self.embedding_dir(m, s) for m in self.trained_models() for s in self.train_seeds]
        return full + self.lora_targets()

    def training_data_file(self) -> str:
        return MINED_DATA if self.mining_enabled else TRAIN_DATA

    def training_data_inputs(self) -> list[str]:
        """Local files that replace registry sets (training.data.files)."""
        return [str(p) for p in (self.training["data"].get("files") or {}).values()]

    def training_data_settings(self) -> dict:
        return normalised(self.training["data"])

    def _miner_is_model(self) -> bool:
        return self.mining["model"] in self.config["models"]

    def mining_model_input(self) -> list[str]:
        model = self.mining["model"]
        if self._miner_is_model():
            return [self.model_input(model)]
        return [model] if self.is_local(model) else []

    def mining_model_source(self) -> str:
        model = self.mining["model"]
        return self.model_source(model) if self._miner_is_model() else model

    def mining_model_revision(self) -> str | None:
        if self._miner_is_model():
            return self.model_revision(self.mining["model"])
        return self.mining["revision"]

    def mining_settings(self) -> dict:
        """Keyword arguments of ``hrsa.mining.mine_file`` (all of training.mining except which
        model mines and whether mining runs)."""
        skip = {"enabled", "model", "revision"}
        return normalised({k: v for k, v in self.mining.items() if k not in skip})

    def trainer_settings(self, seed: int | str, lora: bool = False) -> dict:
        """``config["training"]`` restricted to the trainer's own keys (``TrainConfig``), with
        the derived ``num_negatives`` and the job's seed; for a LoRA target (``lora``) the
        adapter of ``training.lora`` and its learning rate (when set)."""
        settings = {k: v for k, v in self.training.items() if k not in TRAINING_OTHER_KEYS}
        settings.setdefault("num_negatives", int(self.mining["num_negatives"]))
        settings["seed"] = int(seed)
        if lora:
            settings["adapter"] = {k: self.lora[k] for k in LORA_ADAPTER_KEYS}
            if self.lora["learning_rate"] is not None:
                settings["learning_rate"] = self.lora["learning_rate"]
        return normalised(settings)

    # ------------------------------------------------------------------ LoRA (Table 6)
    @property
    def lora(self) -> Mapping:
        return self.training["lora"]

    @cached_property
    def _lora(self) -> list[str]:
        chosen = list(self.lora["models"]) if self.training_enabled else []
        for model in chosen:
            if model not in self._trained:
                raise ConfigError.at(
                    "training.lora.models",
                    f"{model!r} is not a trained model (trained: {', '.join(self._trained) or 'none'}"
                    "): LoRA runs beside a model's full training",
                )
        return chosen

    def lora_models(self) -> list[str]:
        """Trained models also trained with LoRA adapters (training.lora.models)."""
        return list(self._lora)

    def lora_dir(self, model: str, seed: int | str) -> str:
        return LORA_EMBEDDING_DIR.format(model=model, seed=seed)

    def lora_targets(self) -> list[str]:
        return [self.lora_dir(m, s) for m in self.lora_models() for s in self.train_seeds]

    @property
    def train_processes(self) -> int:
        return max(1, self.train_gpus)

    # ------------------------------------------------------------------ evaluation
    @cached_property
    def benchmarks(self) -> dict[str, str]:
        """Benchmark slug (used in paths) -> mteb benchmark name."""
        from .evaluate.names import slugs_to_names

        return slugs_to_names(self.evaluation["benchmarks"])

    @property
    def eval_seeds(self) -> list[int]:
        return [int(s) for s in self.evaluation["seeds"]]

    def eval_models(self) -> list[str]:
        """Trained and published embedding models (evaluated when evaluation.enabled, or when
        the report asks for Table 1)."""
        return self.embedding_models()

    def eval_runs(self) -> list[tuple[str, str, int, str]]:
        """(model, stage, seed, benchmark slug) of every evaluation. A backbone is
        deterministic, so it is evaluated once and filed under the first seed; so is a published
        embedding model (one checkpoint whatever the training seeds)."""
        seeds, benches = self.eval_seeds, list(self.benchmarks)
        runs = [
            (m, "emb", s, b)
            for m in self.eval_models()
            for s in (seeds[:1] if self.is_published(m) else seeds)
            for b in benches
        ]
        if self.evaluation["evaluate_backbone"]:
            runs += [(m, "backbone", seeds[0], b) for m in self.eval_models() for b in benches]
        runs += [(m, "lora", s, b) for m in self.lora_models() for s in seeds for b in benches]
        return runs

    def _run_files(self, template: str) -> list[dict]:
        """One record per evaluation run: its model, stage, seed, benchmark and file."""
        return [
            {
                "model": m,
                "stage": st,
                "seed": s,
                "benchmark": self.benchmarks[b],
                "path": template.format(model=m, stage=st, seed=s, bench=b),
            }
            for m, st, s, b in self.eval_runs()
        ]

    def score_files(self) -> list[dict]:
        return self._run_files(MTEB_SCORES)

    def instruction_files(self) -> list[dict]:
        """The instruction table of every evaluation run (what each task's queries got)."""
        return self._run_files(MTEB_INSTRUCTIONS)

    def evaluation_targets(self) -> list[str]:
        if not (self.evaluation_enabled and self.eval_models()):
            return []
        return [TABLE1, "results/mteb/table1.md"]

    def eval_model_input(self, model: str, stage: str, seed: int | str) -> str:
        if stage == "backbone":
            return self.model_input(model)
        if stage == "lora":
            return self.lora_dir(model, seed)
        return self.emb_model_input(model, seed)

    def eval_model_source(self, model: str, stage: str, seed: int | str) -> str:
        if stage == "backbone":
            return self.model_source(model)
        if stage == "lora":
            return self.lora_dir(model, seed)
        return self.emb_model_source(model, seed)

    def eval_model_revision(self, model: str, stage: str) -> str | None:
        if stage == "backbone":
            return self.model_revision(model)
        if stage == "lora":
            return None
        return self.emb_model_revision(model)

    def is_local_benchmark(self, slug: str) -> bool:
        return self.benchmarks[slug] == "HRSA-Local"

    def eval_data_input(self, slug: str) -> list[str]:
        return [] if self.is_local_benchmark(slug) else [PREFETCH_MTEB.format(bench=slug)]

    def eval_tasks(self, slug: str) -> list[str] | None:
        return (self.evaluation["tasks"] or {}).get(self.benchmarks[slug])

    def _resource(self, path: str) -> str:
        """A relative path not found here is taken from the workflow's directory (a run with
        ``-d`` elsewhere)."""
        if os.path.isabs(path) or self.basedir is None or os.path.exists(path):
            return path
        return os.path.join(self.basedir, path)

    def uses_authors_prompts(self) -> bool:
        """evaluation.prompts is the mapping form: the authors' published instructions."""
        return isinstance(self.evaluation["prompts"], Mapping)

    def eval_prompts(self) -> str:
        """This project's prompts file: evaluation.prompts itself, or its ``fallback``."""
        prompts = self.evaluation["prompts"]
        return self._resource(prompts["fallback"] if self.uses_authors_prompts() else prompts)

    def authors_prompt_sources(self) -> dict[str, str]:
        """The authors' instruction files as configured (URL or path), by key
        (:data:`AUTHORS_PROMPTS`; a key set to null is left out); none with a plain file."""
        if not self.uses_authors_prompts():
            return {}
        prompts = self.evaluation["prompts"]
        return {k: prompts[k] for k in AUTHORS_PROMPTS if prompts.get(k)}

    def prompt_downloads(self) -> list[str]:
        """Keys of the authors' files given as URLs: ``prefetch_prompts`` downloads them."""
        from .prefetch import is_url

        return [k for k, where in self.authors_prompt_sources().items() if is_url(where)]

    def prompt_url(self, source: str) -> str:
        return self.authors_prompt_sources()[source]

    def authors_prompt_files(self) -> dict[str, str]:
        """The local file of each of the authors' instruction files: the download for a URL,
        else the path."""
        downloads, files = self.prompt_downloads(), {}
        for key, where in self.authors_prompt_sources().items():
            if key in downloads:
                files[key] = PREFETCH_PROMPTS.format(source=key)
                continue
            files[key] = self._resource(where)
            if not self._exists(files[key]):
                raise ConfigError.at(
                    f"evaluation.prompts.{key}",
                    f"{where!r} is neither a URL nor an existing file",
                )
        return files

    def eval_authors_input(self) -> list[str]:
        return list(self.authors_prompt_files().values())

    def eval_instruction_settings(self) -> dict | None:
        """What ``hrsa.evaluate.instructions.load_instructions`` needs besides the prompts
        file: the authors' files, where they came from and ``unlisted`` (None: a plain file)."""
        if not self.uses_authors_prompts():
            return None
        files, sources = self.authors_prompt_files(), self.authors_prompt_sources()
        settings = {"unlisted": self.evaluation["prompts"]["unlisted"]}
        for key in AUTHORS_PROMPTS:
            settings[key] = files.get(key)
            settings[f"{key}_origin"] = sources.get(key)
        return normalised(settings)

    def eval_settings(self) -> dict:
        e = self.evaluation
        return normalised(
            {
                "batch_size": e["batch_size"],
                "max_length": e["max_length"],
                "dtype": e["dtype"],
                "seed": e["mteb_seed"],
                "allow_missing": e["allow_missing"],
            }
        )

    def table6_settings(self) -> dict:
        """Params of Table 6: the LoRA models in configured order, benchmarks, labels, score."""
        return {
            "models": self.lora_models(),
            "benchmarks": list(self.benchmarks.values()),
            "labels": {m: self.model_spec(m).get("label", m) for m in self.lora_models()},
            "score": self.evaluation["table1_score"],
            "adapter": normalised(dict(self.lora)),
        }

    def table1_settings(self) -> dict:
        """Params of Table 1 (pairs and models keep their configured order: the rows')."""
        return {
            "files": [normalised(f) for f in self.score_files()],
            "pairs": ordered_table(self.config["pairs"]),
            "benchmarks": list(self.benchmarks.values()),
            "labels": {m: s.get("label", m) for m, s in self.config["models"].items()},
            "published": {m: self.embedding_spec(m)["source"] for m in self.published_models()},
            "score": self.evaluation["table1_score"],
            "instruction_files": [normalised(f) for f in self.instruction_files()],
        }

    # ------------------------------------------------------------------ HRSA
    def hrsa_settings(self) -> dict:
        """config["hrsa"] without the keys of other rules; the global device is the default."""
        settings = {"device": self.device}
        settings.update({k: v for k, v in self.config["hrsa"].items() if k not in HRSA_OTHER_KEYS})
        return normalised(settings)

    def computes(self, name: str) -> bool:
        """Whether ``hrsa.metrics`` selects the paper's metric ``name`` (a level not given
        selects all of its metrics; the names are checked by the HRSA job's own settings,
        ``HRSASettings``, when the config is validated)."""
        selected = self.config["hrsa"].get("metrics") or {}
        for level, names in PAPER_METRICS.items():
            if name in names:
                return name in selected.get(level, names)
        raise KeyError(f"{name!r} is not one of the paper's metrics {PAPER_METRICS}")

    def metrics_left_out(self) -> list[str]:
        """The paper's metrics that ``hrsa.metrics`` leaves out, in the paper's order."""
        return [n for names in PAPER_METRICS.values() for n in names if not self.computes(n)]

    def extra_metrics(self) -> list[str]:
        """hrsa.extra_metrics: registered metrics computed on the subsample besides the paper's."""
        return [str(m) for m in self.config["hrsa"]["extra_metrics"]]

    def hrsa_plugins(self) -> list[str]:
        """hrsa.plugins: modules or .py files (relative to the working directory) that register
        metrics, imported by the HRSA job before it computes."""
        return [str(p) for p in self.config["hrsa"]["plugins"]]

    def hrsa_plugin_files(self) -> list[str]:
        """The plug-ins given as files: inputs of the HRSA jobs (an edit reruns them)."""
        return [p for p in self.hrsa_plugins() if p.endswith(".py")]

    def probe_settings(self, dataset: str | None = None) -> dict:
        """Keyword arguments of ``hrsa.metrics.probe_stores`` for ``dataset``'s probe: the split
        seed and, for a class target (and without a dataset), the logistic regression's ``C``
        and ``max_iter``; for a numeric target ``task: numeric`` and the ridge's ``alpha``.
        Only what changes the job's output is recorded, so a class probe does not rerun when
        ``alpha`` changes, nor a numeric one when ``C`` does."""
        probe = self.config["hrsa"]["probe"]
        if dataset is not None and self.probe_target(dataset) == "numeric":
            return normalised({"seed": probe["seed"], "alpha": probe["alpha"], "task": "numeric"})
        settings = {k: probe[k] for k in ("seed", "C", "max_iter")}
        if dataset is not None and self.probe_extra_metrics():
            settings["extra_metrics"] = self.probe_extra_metrics()
        return normalised(settings)

    def probe_extra_metrics(self) -> list[str]:
        """hrsa.probe.extra_metrics: registered metrics that need labels, computed with the
        cross-model probe (class targets) into ``probe_metrics.csv``."""
        return [str(m) for m in self.config["hrsa"]["probe"]["extra_metrics"]]

    def probe_plugins(self) -> list[str]:
        """hrsa.plugins, imported by the probe job when it computes labelled extra metrics."""
        return self.hrsa_plugins() if self.probe_extra_metrics() else []

    def probe_plugin_files(self) -> list[str]:
        """The probe job's plug-ins given as files (its inputs)."""
        return self.hrsa_plugin_files() if self.probe_plugins() else []

    def probe_outputs(self) -> dict[str, str]:
        """The cross-model probe's outputs: probe.csv, and probe_metrics.csv with labelled
        extra metrics (empty for a numeric target)."""
        outputs = {"probe": f"{HRSA_DIR}/probe.csv"}
        if self.probe_extra_metrics():
            outputs["metrics"] = f"{HRSA_DIR}/{PROBE_METRICS}"
        return outputs

    @property
    def hrsa_gpus(self) -> int:
        return int(self.config["hrsa"]["gpus"])

    def hrsa_targets(self) -> list[str]:
        """metrics.csv + summary.json of every analysis unit; probe.csv where labelled."""
        targets = []
        for u in self.analysis_units():
            base = HRSA_DIR.format(**vars(u))
            targets += [f"{base}/metrics.csv", f"{base}/summary.json"]
        for u in self.analysis_units(dynamics=False):
            if u.dataset in self.labelled_datasets and self.computes("cross_model_probe"):
                targets += [p.format(**vars(u)) for p in self.probe_outputs().values()]
        return targets

    # ------------------------------------------------------------------ report
    @property
    def report(self) -> Mapping:
        return self.config["report"]

    def report_pair_stages(self, pair: str) -> list[str]:
        """The main stages with results for a pair: embedding models only where both exist."""
        return [s for s in STAGES_MAIN if s != "emb" or self.pair_has_embeddings(pair)]

    def report_stages(self) -> list[str]:
        """The main stages with results for at least one pair."""
        return [s for s in STAGES_MAIN if any(s in self.report_pair_stages(p) for p in self.pairs)]

    def main_dataset(self) -> str:
        return self.report.get("main_dataset") or self.hrsa_datasets[0]

    def probe_dataset(self) -> str | None:
        """The labelled class-target dataset of the report's probe figures and Table 2 (their
        readout is accuracy): ``report.probe_dataset``, else ``hrsa.probe.dataset``, else the
        first labelled class-target HRSA dataset; None when there is none. A numeric target
        named by either key is a config error (``hrsa.config.validate_config``)."""
        if not self.computes("cross_model_probe"):
            return None
        labelled = [d for d in self.labelled_datasets if self.probe_target(d) == "class"]
        probe = self.config["hrsa"]["probe"].get("dataset")
        default = probe if probe in labelled else (labelled[0] if labelled else None)
        return self.report.get("probe_dataset") or default

    def figure3_pairs(self) -> list[str]:
        chosen = self.report.get("figure3_pairs")
        if chosen:
            return list(chosen)
        firsts = []
        for family in ("SFT", "RLVR"):
            firsts += [
                p for p in self.pairs if self.config["pairs"][p]["family"].upper() == family
            ][:1]
        return firsts or self.pairs[:2]

    def dynamics_pairs(self) -> list[str]:
        return [
            p
            for p in self.pairs
            if self.pair_has_dynamics(p) and any(n > 0 for n in self.dynamics_steps())
        ]

    def dataset_labels(self) -> dict:
        return normalised(self.report["dataset_labels"])

    def include_table1(self) -> bool:
        default = self.evaluation_enabled and any(self.pair_has_embeddings(p) for p in self.pairs)
        return bool(self.report.get("include_table1", default))

    def report_names(self) -> dict:
        """What every report script gets to name pairs and models."""
        return {
            "pairs": ordered_table(self.config["pairs"]),
            "models": ordered_table(self.config["models"]),
        }

    def verdict_thresholds(self) -> dict:
        return normalised(self.report["verdicts"])

    def hrsa_results(self, name, pairs=None, stages=None, datasets=None) -> list[str]:
        """results/hrsa/{pair}/{stage}/{dataset}/{name} of the given pairs (default: all),
        stages (default: the pair's main stages; others are kept only where the pair has them)
        and datasets (default: the HRSA datasets)."""
        files = []
        for pair in self.pairs if pairs is None else pairs:
            main = self.report_pair_stages(pair)
            wanted = (
                main if stages is None else [s for s in stages if s in main or s not in STAGES_MAIN]
            )
            for stage in wanted:
                for dataset in self.hrsa_datasets if datasets is None else datasets:
                    files.append(
                        f"{HRSA_DIR.format(pair=pair, stage=stage, dataset=dataset)}/{name}"
                    )
        return files

    def probe_results(self, pairs=None, stages=None) -> list[str]:
        dataset = self.probe_dataset()
        if dataset is None:
            return []
        return self.hrsa_results("probe.csv", pairs=pairs, stages=stages, datasets=[dataset])

    def table8_figure_metrics(self) -> list[str]:
        """What the Table 8 figure draws: the per-layer extra metrics, then the labelled ones
        (when the report has a probe dataset)."""
        labelled = self.probe_extra_metrics() if self.probe_dataset() is not None else []
        return self.extra_metrics() + labelled

    def probe_metric_results(self) -> list[str]:
        """probe_metrics.csv of every pair and main stage on the report's probe dataset (the
        labelled panels of the Table 8 figure); none without labelled extra metrics."""
        dataset = self.probe_dataset()
        if dataset is None or not self.probe_extra_metrics():
            return []
        return self.hrsa_results(PROBE_METRICS, datasets=[dataset])

    def dynamics_results(self, pair: str) -> list[str]:
        """Summaries of every snapshot of one pair; the backbone stands for step 0."""
        steps = [f"step{n}" for n in self.dynamics_steps() if n > 0]
        return self.hrsa_results(
            "summary.json",
            pairs=[pair],
            stages=["backbone", *steps],
            datasets=self.dynamics_datasets(),
        )

    def table7_inputs(self) -> dict[str, str]:
        """The training-data report and, when mining runs, the miner's report (Table 7)."""
        files = {"data": TRAIN_DATA_REPORT}
        if self.mining_enabled:
            files["mining"] = MINED_DATA_REPORT
        return files

    def report_tables(self) -> list[str]:
        numbers = [2]
        if self.computes("procrustes"):  # H_inv: Tables 3, 12 (13 with the embedding models)
            numbers += [3, 12]
        if self.computes("knn_overlap"):
            numbers.append(4)
        if self.cot_enabled():
            numbers.append(11)
        if self.trained_models():
            numbers.append(7)
        if "emb" in self.report_stages() and self.computes("procrustes"):
            numbers.append(13)
        if self.include_table1():
            numbers.append(1)
            if self.lora_models():
                numbers.append(6)
        stems = [f"{REPORT}/table{n}" for n in sorted(numbers)]
        stems += self.report_appendices()
        files = [f"{stem}.{ext}" for stem in stems for ext in ("csv", "md")]
        files.append(f"{REPORT}/{RLVR_VS_SFT}.csv")  # written with Table 2
        if self.cot_enabled():  # the generated CoT dataset's card, with Table 11
            files.append(f"{REPORT}/{COT_CARD}.md")
        return files

    def report_appendices(self) -> list[str]:
        """Stems of the report's appendices: Table 1's instructions, with Table 1."""
        return [INSTRUCTIONS_APPENDIX] if self.include_table1() else []

    def report_figures(self) -> list[str]:
        stages = self.report_stages()
        numbers = [int(n) for n, (m, s) in LAYER_GRIDS.items() if s in stages and self.computes(m)]
        if any(self.computes(m) for m in FIGURE3_METRICS):
            numbers.append(3)
        if self.probe_dataset() is not None:
            numbers += [4] + [int(n) for n, s in PROBE_GRIDS.items() if s in stages]
        stems = [f"figure{n}" for n in sorted(numbers)]
        if any(self.computes(m) for m in DYNAMICS_METRICS):
            stems += [f"figure5/{pair}" for pair in self.dynamics_pairs()]
        if any(self.computes(m) for m in PAIR_FIGURE_METRICS):
            stems += [f"pairs/{pair}" for pair in self.pairs]
        files = [f"{REPORT}/{stem}.{ext}" for stem in stems for ext in ("png", "pdf")]
        if self.table8_figure_metrics():  # with the data it draws
            files += [f"{REPORT}/{TABLE8_FIGURE}.{ext}" for ext in ("png", "pdf", "csv")]
        if self.task_trained_models():
            files += [f"{REPORT}/{TASK_FIGURE}.{ext}" for ext in ("png", "pdf", "csv")]
        return files

    def task_trained_models(self) -> list[str]:
        """Reasoning models of the pairs built by a task recipe (``rlvr``, ``task_sft``), in
        pair order: the task-training figure draws their build records."""
        found = []
        for pair in self.pairs:
            model = self.config["pairs"][pair]["reasoning"]
            build = self.model_spec(model).get("build", {})
            if build.get("recipe") in TASK_RECIPES and model not in found:
                found.append(model)
        return found

    def task_figure_inputs(self) -> list[str]:
        """The model directories whose build records (``hrsa_build.json``) the task-training
        figure reads (the directory is the rule's output, so it is the input too)."""
        return [self.model_dir(m) for m in self.task_trained_models()]

    def report_targets(self) -> list[str]:
        return [f"{REPORT}/README.md", *self.report_tables(), *self.report_figures()]

    def report_skipped(self) -> dict[str, str]:
        """Outputs not built with this config, and why (listed in the report's README)."""
        skipped = {}
        if not self.include_table1():
            skipped["Table 1"] = (
                "no MTEB evaluation in this config (report.include_table1 / evaluation.enabled)."
            )
        if not (self.lora_models() and self.include_table1()):
            skipped["Table 6"] = (
                "no LoRA embedding models evaluated in this config (training.lora.models, "
                "with MTEB evaluation)."
            )
        if not self.cot_enabled():
            skipped["Table 11"] = (
                "no CoT generation in this config (cot_generation.sources; the probe data are "
                "the authors' published traces or a stand-in)."
            )
        if not self.trained_models():
            skipped["Table 7"] = (
                "no contrastive training in this config (training.enabled, or every embedding "
                "model is published: models.<key>.embedding_source)."
            )
        if "emb" not in self.report_stages():
            skipped["Embedding-model outputs (Figures 7, 9, 11, 13; Table 13)"] = (
                "no pair is trained into embedding models in this config."
            )
        if not self.computes("cross_model_probe"):
            skipped["Figures 4, 12, 13; Table 2's linear readout"] = (
                "hrsa.metrics.function leaves out cross_model_probe (no probe jobs)."
            )
        elif self.probe_dataset() is None:
            skipped["Figures 4, 12, 13"] = "no labelled class-target probe dataset is configured."
        left_out = {
            "procrustes": "Tables 3, 12, 13 (H_inv); Table 2's coordinate basis",
            "knn_overlap": "Table 4, Figures 10, 11; Table 2's local geometry",
            "dimension_wise_correlation": "Figures 6, 7; Table 2's coordinate basis",
            "linear_cka": "Figures 8, 9; Table 2's global geometry",
        }
        for metric, outputs in left_out.items():
            if not self.computes(metric):
                skipped[outputs] = f"hrsa.metrics leaves out {metric} (not computed)."
        for outputs, metrics in (
            ("Figure 3", FIGURE3_METRICS),
            ("Figure 5", DYNAMICS_METRICS),
            ("pairs/<pair> figures", PAIR_FIGURE_METRICS),
        ):
            if not any(self.computes(m) for m in metrics):
                skipped[outputs] = f"hrsa.metrics leaves out all of {', '.join(metrics)}."
        if not self.table8_figure_metrics():
            skipped["Table 8 alternatives"] = (
                "no extra metrics in this config (hrsa.extra_metrics, hrsa.probe.extra_metrics; "
                "docs/adding-a-metric.md)."
            )
        if not self.dynamics_pairs():
            skipped["Figure 5"] = (
                "no pair is trained with snapshots (training.save_every; a pair with a published "
                "embedding model has none)."
            )
        return skipped

    # ------------------------------------------------------------------ prefetch and all
    def prefetch_inputs(self) -> list[str]:
        """Everything a run downloads: hub models, published embedding models, probe data (not
        the generated CoT traces: their problems), the training data (when a model is
        trained), the mteb benchmarks' datasets and the authors' instruction files given as
        URLs."""
        files = [PREFETCH_MODEL.format(model=m) for m in self.prefetched_models()]
        files += [
            PREFETCH_EMBEDDING.format(model=m)
            for m in self.published_models()
            if not self.is_local(self.embedding_spec(m)["source"])
        ]
        files += [
            PROBE_DATA.format(dataset=d) for d in self.probe_datasets if not self.probe_generated(d)
        ]
        files += list(self.cot_problem_files().values())
        if self.evaluation_enabled:
            files += [
                PREFETCH_MTEB.format(bench=slug)
                for slug in self.benchmarks
                if not self.is_local_benchmark(slug)
            ]
            files += [PREFETCH_PROMPTS_RECORD.format(source=k) for k in self.prompt_downloads()]
        if self.trained_models():
            files.append(TRAIN_DATA)
        return files

    def all_targets(self) -> list[str]:
        return [
            *self.extraction_targets(),
            *self.pair_check_targets(),
            *self.hrsa_targets(),
            *self.training_targets(),
            *self.evaluation_targets(),
            *self.report_targets(),
        ]
