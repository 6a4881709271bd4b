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
    """Directory of a TRAINED embedding model (never of a published one: see emb_model_input)."""
    return f"results/embeddings/{model}/seed{ANALYSIS_SEED if seed is None else seed}"


def embedding_spec(model):
    """A model's published embedding model ({source, revision}) that replaces training, or None."""
    return model_spec(model).get("embedding_source")


def is_published(model):
    return embedding_spec(model) is not None


def published_models():
    return [m for m in MODELS if is_published(m)]


def published_is_local(model):
    return os.path.exists(os.path.expanduser(embedding_spec(model)["source"]))


def published_input(model):
    """The file dependency standing for a published embedding model: its local directory or
    its prefetch record (results/prefetch/embeddings/{model}.json)."""
    if published_is_local(model):
        return embedding_spec(model)["source"]
    return f"results/prefetch/embeddings/{model}.json"


def emb_model_input(model, seed=None):
    """The embedding model of `model` as an input: the published one, else the trained one."""
    return published_input(model) if is_published(model) else embedding_dir(model, seed)


def emb_model_source(model, seed=None):
    """What a loader gets for the embedding model: published hub id / path, or the trained dir."""
    if is_published(model):
        return embedding_spec(model)["source"]
    return embedding_dir(model, seed)


def emb_model_revision(model):
    return embedding_spec(model).get("revision") if is_published(model) else None


def dynamics_steps(pair=None):
    """Training snapshot steps analysed for dynamics (step 0 is the backbone itself)."""
    if not TRAINING_ENABLED:
        return []
    every, last = int(TRAINING.get("save_every", 0)), int(TRAINING.get("max_steps", 0))
    steps = list(range(every, last, every)) if every > 0 else []
    return [0] + steps + [last]


def _no_snapshots(model, stage):
    if is_published(model):
        raise ValueError(
            f"{stage} of {model}: a published embedding model (models.{model}.embedding_source) "
            "has no training snapshots"
        )


def stage_model_input(wildcards):
    """Input of an extraction job: the backbone, the (trained or published) embedding model, or
    the trained model's snapshots."""
    if wildcards.stage == "backbone" or wildcards.stage == "step0":
        return model_input(wildcards.model)
    if wildcards.stage == "emb":
        return emb_model_input(wildcards.model)
    _no_snapshots(wildcards.model, wildcards.stage)
    return embedding_dir(wildcards.model)


def stage_model_path(wildcards):
    if wildcards.stage == "backbone" or wildcards.stage == "step0":
        return model_source(wildcards.model)
    if wildcards.stage == "emb":
        return emb_model_source(wildcards.model)
    _no_snapshots(wildcards.model, wildcards.stage)
    step = int(wildcards.stage[4:])
    return f"{embedding_dir(wildcards.model)}/checkpoints/step{step}"


def stage_model_revision(wildcards):
    if wildcards.stage in ("backbone", "step0"):
        return model_spec(wildcards.model).get("revision")
    return emb_model_revision(wildcards.model)


def store_path(model, stage, dataset):
    return f"results/activations/{model}/{stage}/{dataset}"


def pair_store(wildcards, role):
    pair = config["pairs"][wildcards.pair]
    return store_path(pair[role], wildcards.stage, wildcards.dataset)


def members(pair):
    return [config["pairs"][pair][role] for role in ("base", "reasoning")]


def pair_trains(pair):
    """The pair asks for embedding models to be trained (training.enabled and its `train`)."""
    return TRAINING_ENABLED and config["pairs"][pair].get("train", True)


def trained_models():
    """Backbones trained into embedding models: the members of every pair with train: true,
    except those with a published embedding model (models.<key>.embedding_source)."""
    return sorted(
        {m for p in PAIRS if pair_trains(p) for m in members(p) if not is_published(m)}
    )


def has_embedding_model(model):
    return is_published(model) or model in trained_models()


def pair_has_embeddings(pair):
    """The pair has an `emb` stage: each member is trained or has a published embedding model."""
    return all(has_embedding_model(m) for m in members(pair))


def pair_has_dynamics(pair):
    """Training snapshots exist for both members: both trained (none published)."""
    return all(m in trained_models() for m in members(pair))


def embedding_models():
    """Every model whose embedding model is analysed and evaluated (trained or published)."""
    return sorted({m for p in PAIRS if pair_has_embeddings(p) for m in members(p)})


def pair_stages(pair, dynamics=False):
    """Stages analysed for a pair: the backbones, their embedding models, and (optionally) the
    training snapshots step{N} used for training dynamics (step0 is the backbone), which need
    both members trained."""
    stages = ["backbone"]
    if pair_has_embeddings(pair):
        stages.append("emb")
        if dynamics and pair_has_dynamics(pair):
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
