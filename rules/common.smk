# Config tables, wildcard constraints and input functions. No rules here.
import os
import re
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from hrsa.config import validate_config  # noqa: E402

validate_config(
    config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
)

MODELS = list(config["models"])
PAIRS = list(config["pairs"])
PROBE_DATASETS = list(config["probe_datasets"])
HRSA_DATASETS = list(config["hrsa"].get("datasets", PROBE_DATASETS))
PROBE_DATASETS_LABELLED = [
    d for d in HRSA_DATASETS if config["probe_datasets"][d].get("labelled", False)
]
STAGES_MAIN = ["backbone", "emb"]
TRAINING = config.get("training", {})
TRAINING_ENABLED = bool(TRAINING.get("enabled", False))
EVALUATION_ENABLED = bool(config.get("evaluation", {}).get("enabled", False))
ANALYSIS_SEED = config.get("analysis_seed", 0)
THREADS = config.get("threads", 2)


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) if names else "$^"


wildcard_constraints:
    model=_alternatives(MODELS),
    pair=_alternatives(PAIRS),
    dataset=_alternatives(PROBE_DATASETS),
    stage=r"backbone|emb|step\d+",
    seed=r"\d+",


def model_spec(model):
    return config["models"][model]


def is_built(model):
    return "build" in model_spec(model)


def model_dir(model):
    """Local directory of a built (tiny) model."""
    return f"results/models/{model}"


def model_source(wildcards_or_model):
    """What a loader gets: a local directory, or a hub id (resolved from the prefetched cache)."""
    model = getattr(wildcards_or_model, "model", wildcards_or_model)
    return model_dir(model) if is_built(model) else model_spec(model)["source"]


def model_input(wildcards_or_model):
    """The file dependency standing for a model: its build directory or its prefetch record."""
    model = getattr(wildcards_or_model, "model", wildcards_or_model)
    if is_built(model):
        return model_dir(model)
    spec = model_spec(model)
    if os.path.exists(os.path.expanduser(spec["source"])):
        return spec["source"]
    return f"results/prefetch/models/{model}.json"


def embedding_dir(model, seed=None):
    return f"results/embeddings/{model}/seed{ANALYSIS_SEED if seed is None else seed}"


def dynamics_steps(pair=None):
    """Training snapshot steps analysed for dynamics (step 0 is the backbone itself)."""
    if not TRAINING_ENABLED:
        return []
    every, last = int(TRAINING.get("save_every", 0)), int(TRAINING.get("max_steps", 0))
    steps = list(range(every, last, every)) if every > 0 else []
    return [0] + steps + [last]


def stage_model_input(wildcards):
    """Input of an extraction job: the backbone, the trained embedding model, or its snapshots."""
    if wildcards.stage == "backbone" or wildcards.stage == "step0":
        return model_input(wildcards.model)
    return embedding_dir(wildcards.model)


def stage_model_path(wildcards):
    if wildcards.stage == "backbone" or wildcards.stage == "step0":
        return model_source(wildcards.model)
    if wildcards.stage == "emb":
        return embedding_dir(wildcards.model)
    step = int(wildcards.stage[4:])
    return f"{embedding_dir(wildcards.model)}/checkpoints/step{step}"


def store_path(model, stage, dataset):
    return f"results/activations/{model}/{stage}/{dataset}"


def pair_store(wildcards, role):
    pair = config["pairs"][wildcards.pair]
    return store_path(pair[role], wildcards.stage, wildcards.dataset)


def pair_trains(pair):
    return TRAINING_ENABLED and config["pairs"][pair].get("train", True)


def trained_models():
    """Backbones trained into embedding models: both members of every pair with train: true."""
    return sorted(
        {
            config["pairs"][p][role]
            for p in PAIRS
            if pair_trains(p)
            for role in ("base", "reasoning")
        }
    )


def pair_stages(pair, dynamics=False):
    """Stages analysed for a pair: the backbones, their embedding models, and (optionally) the
    training snapshots step{N} used for training dynamics (step0 is the backbone)."""
    stages = ["backbone"]
    if pair_trains(pair):
        stages.append("emb")
        if dynamics:
            stages += [f"step{s}" for s in dynamics_steps(pair) if s > 0]
    return stages


def dynamics_datasets():
    return list(TRAINING.get("dynamics_datasets", HRSA_DATASETS[:1]))


def analysis_units(dynamics=True):
    """(pair, stage, dataset) triples analysed by HRSA."""
    units = []
    for pair in PAIRS:
        for stage in pair_stages(pair):
            units += [(pair, stage, d) for d in HRSA_DATASETS]
        if dynamics:
            for stage in pair_stages(pair, dynamics=True)[len(pair_stages(pair)) :]:
                units += [(pair, stage, d) for d in dynamics_datasets()]
    return units


def extraction_targets():
    """One store per distinct (model, stage, dataset): shared backbones are extracted once."""
    targets = set()
    for pair, stage, dataset in analysis_units():
        for role in ("base", "reasoning"):
            targets.add(store_path(config["pairs"][pair][role], stage, dataset))
    return sorted(targets)


def pair_check_targets():
    return [f"results/checks/{p}/{s}/{d}.json" for p, s, d in analysis_units()]


def all_targets():
    targets = extraction_targets() + pair_check_targets()
    for name in (
        "hrsa_targets",
        "training_targets",
        "evaluation_targets",
        "report_targets",
    ):
        func = globals().get(name)
        if func is not None:
            targets += func()
    return targets
