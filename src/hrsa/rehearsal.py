"""A full-fidelity rehearsal of ``config/paper.yaml`` that runs on a laptop CPU, offline.

:func:`rehearsal_config` derives the rehearsal from the paper's configuration. It keeps every key
and every code path of ``paper.yaml`` and swaps only what cannot exist on a machine without GPUs
and without the Hugging Face Hub:

* **models** - every hub model becomes a tiny model built locally (:mod:`hrsa.tiny`) with the
  same architecture class (``architecture`` in ``paper.yaml``: Qwen2 or Qwen3) and the same
  tokenizer relationship: the reasoning model of a pair is built from its base model and keeps its
  tokenizer, as the real pairs share theirs; base models are plain language models. Widths and
  depths shrink with the real ones (``hidden_size / 32``, ``num_layers / 7``);
* **data** - ``data_mirror`` points every remote dataset (the 11 training sets, the CoT traces,
  MMLU-Pro, AG News) at small local files in exactly the real source's schema, read by the same
  loaders (:mod:`hrsa.data.remote`): only the file location differs. :func:`write_mirror` writes
  them;
* **GPUs** - ``training.gpus`` becomes 2 CPU processes over gloo; ``fsdp``, gradient
  checkpointing and bf16 autocast stay switched on exactly as in ``paper.yaml``;
* **sizes** - steps, batch sizes, rows, bootstrap replicates and the evaluation tasks (the
  offline ``HRSA-Local`` benchmark instead of the hub benchmarks) shrink, by config only.

``config/rehearsal.yaml`` is this function's output (``hrsa rehearsal-config``); a test keeps the
file equal to it, so the rehearsal cannot drift from the paper's configuration. ``make rehearsal``
writes the mirror and runs the workflow on it to the report (part of ``.ci/run``).

What the rehearsal cannot prove: CUDA kernels, bf16 numerics on a GPU, NCCL collectives, memory
and wall time at paper scale, the hub downloads and the real datasets' contents (only their
schemas) - see docs/cluster.md.
"""

from __future__ import annotations

import copy
import csv
import math
import os
from pathlib import Path

import yaml

from .config import schema_default
from .errors import ConfigError, config_error

# Real architecture classes -> the tiny builder's architectures (hrsa.tiny.build_model).
ARCHITECTURES = {"Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}

HEADER = """\
# GENERATED from config/paper.yaml by hrsa.rehearsal.rehearsal_config - do not edit by hand.
# Regenerate: .venv/bin/hrsa rehearsal-config config/paper.yaml -o config/rehearsal.yaml --seeds N
# with the settings recorded below (`make rehearsal-config` does it).
# (tests/test_rehearsal.py fails when this file and paper.yaml drift apart).
# The paper's configuration with only what cannot exist on a CPU machine without the Hub
# swapped: tiny local models of the same architecture class, real-schema local data under
# data_mirror, 2 CPU processes (gloo) instead of GPUs, smaller sizes. Run: make rehearsal
"""

DEFAULT_MIRROR = "results/rehearsal/mirror"


def _tiny_width(hidden_size: int | None) -> int:
    """About hidden_size / 32, a multiple of 16 (4 heads of a width divisible by 4), >= 32."""
    if not hidden_size:
        return 32
    return max(32, 16 * round(hidden_size / 32 / 16))


def _tiny_depth(num_layers: int | None) -> int:
    return max(2, round((num_layers or 14) / 7))


def _tiny_models(paper: dict, *, base_steps: int, tune_steps: int) -> dict:
    models, pairs = paper["models"], paper["pairs"]
    # A reasoning model is built from its pair's base; a model that is the reasoning member of
    # one pair and the base of another (DS-R1-Distill-1.5B) is built once, from its own base.
    parent: dict[str, tuple[str, str]] = {}
    for name, pair in pairs.items():
        reasoning = pair["reasoning"]
        if reasoning in parent and parent[reasoning][0] != pair["base"]:
            raise config_error(
                f"pairs.{name}.reasoning",
                f"{reasoning!r} is the reasoning model of two pairs with different bases; "
                "the rehearsal cannot build it from both",
            )
        parent[reasoning] = (pair["base"], pair["family"])
    miner = ((paper.get("training") or {}).get("mining") or {}).get("model")
    backbones = {p[role] for p in pairs.values() for role in ("base", "reasoning")}
    out = {}
    for key, spec in models.items():
        if "build" in spec:
            out[key] = copy.deepcopy(spec)
            continue
        arch_class = spec.get("architecture")
        if arch_class not in ARCHITECTURES:
            raise config_error(
                f"models.{key}.architecture",
                f"{arch_class!r}; the rehearsal needs the real model's class, one of "
                f"{sorted(ARCHITECTURES)}",
            )
        width, depth = _tiny_width(spec.get("hidden_size")), _tiny_depth(spec.get("num_layers"))
        if key == miner and key not in backbones:
            # the hard-negative miner (an embedding model, not a backbone): a tiny
            # SentenceTransformer that loads like Qwen3-Embedding-0.6B does (hrsa.tiny)
            build = {"recipe": "embedding", "seed": 0, "hidden_size": 64}
        elif key in parent:
            base, family = parent[key]
            build = {
                "recipe": "sft" if family == "SFT" else "reason",
                "arch": ARCHITECTURES[arch_class],
                "init": base,
                "seed": 0,
                "steps": tune_steps,
            }
        else:
            build = {
                "recipe": "base",
                "arch": ARCHITECTURES[arch_class],
                "seed": 0,  # one tokenizer for every tiny model, as the Qwen family shares one
                "steps": base_steps,
                "hidden_size": width,
                "layers": depth,
            }
        tiny = {k: v for k, v in spec.items() if k not in ("source", "revision")}
        tiny["build"] = build
        tiny["label"] = f"{spec.get('label', key)} (tiny)"
        out[key] = tiny
    # a reasoning model has its base's shape: record the shape the tiny model really has
    for key, tiny in out.items():
        root = key
        while "init" in out[root].get("build", {}):
            root = out[root]["build"]["init"]
        build = out[root].get("build", {})
        if "layers" in build:
            tiny["hidden_size"], tiny["num_layers"] = build["hidden_size"], build["layers"]
        elif build.get("recipe") == "embedding":
            tiny["hidden_size"] = build["hidden_size"]
    for key, tiny in out.items():  # checks: the init chain must end at a base model
        init = tiny.get("build", {}).get("init")
        if init is not None and init not in out:
            raise config_error(f"models.{key}", f"base {init!r} is not a model key")
    return out


def rehearsal_config(
    paper: dict,
    *,
    mirror: str = DEFAULT_MIRROR,
    seeds: int | None = None,
    processes: int = 2,
    global_batch_size: int = 8,
    mini_batch_size: int = 2,
    max_steps: int = 4,
    save_every: int = 2,
    smallest_set_rows: int = 10,
    base_steps: int = 60,
    tune_steps: int = 15,
    per_category: int = 4,
    bootstrap: int = 10,
    permutations: int = 5,
    threads: int = 1,
) -> dict:
    """The rehearsal of ``paper`` (a parsed ``paper.yaml``): see the module docstring.

    ``seeds`` keeps the first N training and evaluation seeds (None: all of the paper's).
    ``smallest_set_rows`` sizes the training data: every set keeps its Table 7 share
    (``training.data.scale``), the smallest with about this many rows (at least one global batch).
    """
    if global_batch_size % processes or (global_batch_size // processes) % mini_batch_size:
        raise ConfigError(
            "rehearsal: global_batch_size must split into processes x whole mini-batches"
        )
    cfg = copy.deepcopy(paper)
    cfg["models"] = _tiny_models(paper, base_steps=base_steps, tune_steps=tune_steps)
    cfg["data_mirror"] = mirror
    # jobs here are mostly interpreter start-up: one thread each lets two run side by side
    cfg["threads"] = threads

    for key, spec in cfg["probe_datasets"].items():
        if "stratify" in spec:
            spec["stratify"] = {**spec["stratify"], "per_group": per_category}
        if "limit" in spec:
            spec["limit"] = min(int(spec["limit"]), 40)
        if key == "cot":
            spec.setdefault("tiers", ["hard"])

    hrsa = cfg["hrsa"]
    for key, cap in (("bootstrap", bootstrap), ("permutations", permutations)):
        hrsa[key] = min(int(hrsa.get(key, schema_default(f"hrsa.{key}"))), cap)

    training = cfg.get("training")
    if training:
        from .data.contrastive import REGISTRY

        sources = training.get("data", {}).get("sources") or list(REGISTRY)
        smallest = min(REGISTRY[s].n_paper for s in sources if s in REGISTRY)
        rows = max(smallest_set_rows, global_batch_size)
        # the smallest set gets `rows` (rounding up), every other its Table 7 share
        scale = float(f"{math.ceil(rows / smallest * 1e6) / 1e6:.6g}")
        training["data"] = {**training.get("data", {}), "scale": scale}
        training["gpus"] = processes
        training.update(
            global_batch_size=global_batch_size,
            mini_batch_size=mini_batch_size,
            max_steps=max_steps,
            save_every=save_every,
        )
        if seeds is not None:
            training["seeds"] = list(training["seeds"])[:seeds]
    evaluation = cfg.get("evaluation")
    if evaluation:
        evaluation["benchmarks"] = ["HRSA-Local"]
        evaluation.pop("tasks", None)
        if seeds is not None:
            evaluation["seeds"] = list(evaluation["seeds"])[:seeds]
    return cfg


SETTINGS_LINE = "# rehearsal settings: "


def dump(cfg: dict, settings: dict | None = None) -> str:
    """The YAML text of a rehearsal config: the generated-file header, the settings it was made
    with (so the drift test can remake it) and the config."""
    import json

    line = SETTINGS_LINE + json.dumps(settings or {}, sort_keys=True) + "\n"
    body = yaml.safe_dump(cfg, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + line + "\n" + body


def read_settings(text: str) -> dict:
    """The settings recorded by :func:`dump` in a rehearsal config's text."""
    import json

    for line in text.splitlines():
        if line.startswith(SETTINGS_LINE):
            return json.loads(line[len(SETTINGS_LINE) :])
    raise ConfigError("not a generated rehearsal config: no settings line")


def write_rehearsal_config(
    paper_path: str | os.PathLike, out: str | os.PathLike, **settings
) -> dict:
    """Read ``paper_path``, write its rehearsal to ``out`` (atomically); return the config."""
    from .atomic import atomic_path
    from .config import validate_config

    paper = yaml.safe_load(Path(paper_path).read_text())
    cfg = rehearsal_config(paper, **settings)
    validate_config(copy.deepcopy(cfg))  # validation fills defaults in; the file keeps none
    with atomic_path(out) as tmp:
        tmp.write_text(dump(cfg, settings))
    return cfg


def write_mirror(cfg: dict, root: str | os.PathLike = ".", *, seed: int = 0) -> Path:
    """Write the local, real-schema copies of every remote dataset ``cfg`` reads, at its
    ``data_mirror`` (relative to ``root``, the workflow's working directory)."""
    from .data.contrastive import planned_rows
    from .data.probe_fixtures import write_probe_mirror
    from .data.training_fixtures import write_training_mirror

    if not cfg.get("data_mirror"):
        raise config_error("data_mirror", "the rehearsal needs a mirror directory")
    mirror = Path(root) / cfg["data_mirror"]
    write_probe_mirror(mirror, seed=seed)
    training = cfg.get("training") or {}
    if training.get("enabled") and training.get("data", {}).get("source") in ("hub", "local"):
        planned = planned_rows(training["data"])
        # a little more than asked, so the seeded sample is a real sample of the mirror
        write_training_mirror(
            mirror, {k: n + max(2, n // 10) for k, n in planned.items()}, seed=seed
        )
    return mirror


def check_run(cfg: dict, root: str | os.PathLike = ".") -> dict:
    """Assert what a finished rehearsal (``cfg`` run in ``root``) must show, beyond "every job
    succeeded": the GPU path's switches really ran, the paper's data rules held. Returns a summary;
    raises :class:`~hrsa.errors.HRSAError` listing every failed check."""
    import json

    from .activations import ActivationStore
    from .data.contrastive import REGISTRY
    from .errors import HRSAError
    from .train.config import snapshot_steps

    root = Path(root)
    res = root / "results"
    failures: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            failures.append(what)

    training = cfg.get("training") or {}
    trained = sorted(
        {
            p[role]
            for p in cfg["pairs"].values()
            if p.get("train", schema_default("pairs.<key>.train"))
            for role in ("base", "reasoning")
        }
    )
    runs = {}
    if training.get("enabled"):
        snapshots = snapshot_steps(int(training["max_steps"]), int(training["save_every"]))
        lora = training.get("lora") or {}
        targets = [(model, "seed") for model in trained]
        targets += [(model, "lora-seed") for model in lora.get("models") or []]
        for model, kind in targets:
            for seed in training["seeds"]:
                summary_path = (
                    res / "embeddings" / model / f"{kind}{seed}" / "training_summary.json"
                )
                if not summary_path.is_file():
                    failures.append(f"{summary_path}: missing")
                    continue
                s = json.loads(summary_path.read_text())
                where = f"{model} {kind} {seed}"
                if kind == "lora-seed":  # the adapters really ran, and only they trained
                    expect(
                        (s.get("lora") or {}).get("rank") == lora.get("rank"),
                        f"{where}: LoRA rank {(s.get('lora') or {}).get('rank')}",
                    )
                    expect(
                        0 < s.get("trainable_parameters", 0) < s.get("total_parameters", 0),
                        f"{where}: trainable parameters {s.get('trainable_parameters')}",
                    )
                gpus = int(training.get("gpus", schema_default("training.gpus")))
                fsdp = training.get("fsdp") and gpus > 1
                expect(
                    s["distributed_type"] == ("FSDP" if fsdp else s["distributed_type"]),
                    f"{where}: trained with {s['distributed_type']}, not FSDP",
                )
                expect(
                    s["world_size"] == max(1, gpus),
                    f"{where}: {s['world_size']} processes",
                )
                precision = training.get(
                    "mixed_precision", schema_default("training.mixed_precision")
                )
                if precision != "auto":  # auto depends on the device: not checked
                    expect(
                        s["mixed_precision"] == precision,
                        f"{where}: precision {s['mixed_precision']}",
                    )
                expect(
                    s["gradient_checkpointing"] == bool(training.get("gradient_checkpointing")),
                    f"{where}: gradient checkpointing {s['gradient_checkpointing']}",
                )
                expect(s["snapshots"] == snapshots, f"{where}: snapshots {s['snapshots']}")
                runs[f"{model}/{kind}{seed}"] = {
                    k: s[k]
                    for k in (
                        "distributed_type",
                        "mixed_precision",
                        "world_size",
                        "first_loss",
                        "last_loss",
                        "wall_seconds_this_run",
                    )
                }
        data_report = res / "data" / "train" / "contrastive.jsonl.report.json"
        mined_report = res / "data" / "train" / "mined.jsonl.report.json"
        rows = {}
        if data_report.is_file():
            sets = json.loads(data_report.read_text())["sets"]
            rows = {k: v["used"] for k, v in sets.items()}
            from .data.contrastive import planned_rows

            expect(rows == planned_rows(training["data"]), f"rows per set {rows} != the plan")
        else:
            failures.append(f"{data_report}: missing")
        mining = training.get("mining") or {}
        if mining.get("enabled", schema_default("training.mining.enabled")):
            if mined_report.is_file():
                mined = json.loads(mined_report.read_text())["sources"]
                for key, counts in mined.items():
                    annotated = REGISTRY[key].annotated_negatives if key in REGISTRY else None
                    if annotated is not None:
                        # annotated sets keep their negatives (rows with fewer than
                        # num_negatives are topped up: "mixed"); the others are mined
                        want = ("kept", "mixed") if annotated else ("mined",)
                        expect(
                            counts["policy"] in want,
                            f"mining {key}: policy {counts['policy']}, the authors' is {want}",
                        )
            else:
                failures.append(f"{mined_report}: missing")
        expect((res / "report" / "table7.csv").is_file(), "report/table7.csv missing")

    # the probe dataset's store holds every row; the CoT store every correct trace, untruncated
    probe_key = (cfg["hrsa"].get("probe") or {}).get("dataset")
    stores = {}
    for dataset in cfg["hrsa"].get("datasets", []):
        texts = res / "data" / "probe" / f"{dataset}.jsonl"
        n_rows = sum(1 for line in texts.open() if line.strip()) if texts.is_file() else 0
        pair = next(iter(cfg["pairs"].values()))
        store_dir = res / "activations" / pair["base"] / "backbone" / dataset
        if not store_dir.is_dir():
            failures.append(f"{store_dir}: missing")
            continue
        store = ActivationStore(store_dir)
        n_seq = len(store.sequences)
        stores[dataset] = {"rows": n_rows, "sequences": n_seq, "tokens": int(store.n_rows)}
        acts = cfg["activations"]
        uncapped = dataset == probe_key or not (acts.get("max_tokens") or acts.get("max_sequences"))
        if uncapped:
            expect(n_seq == n_rows, f"{dataset}: store keeps {n_seq} of {n_rows} sequences")
        if acts.get("max_length") is None:
            stores[dataset]["longest"] = max((s["n_tokens"] for s in store.sequences), default=0)
    report = res / "report"
    for name in ("README.md", "table2.csv", "table3.csv", "table4.csv"):
        expect((report / name).is_file(), f"report/{name} missing")
    families = {str((p or {}).get("family")) for p in (cfg.get("pairs") or {}).values()}
    contrast = report / "table2_rlvr_vs_sft.csv"
    expect(contrast.is_file(), "report/table2_rlvr_vs_sft.csv missing")
    if contrast.is_file() and {"RLVR", "SFT"} <= families:
        with contrast.open(newline="") as f:
            stages = {row["stage"] for row in csv.DictReader(f)}
        expect("backbone" in stages, f"{contrast}: no RLVR-vs-SFT rows for the LLMs")
    if (cfg.get("evaluation") or {}).get("enabled"):
        expect((report / "table1.csv").is_file(), "report/table1.csv missing")
        if training.get("enabled") and (training.get("lora") or {}).get("models"):
            expect((report / "table6.csv").is_file(), "report/table6.csv missing")
    if failures:
        raise HRSAError("rehearsal check failed:\n- " + "\n- ".join(failures))
    return {"training_runs": runs, "stores": stores, "report_files": len(list(report.rglob("*")))}
