# Settings and input functions of the training rules (rules/train.smk includes this file).
# Needs common.smk (TRAINING, PAIRS, THREADS, model_spec/model_input/model_source/embedding_dir,
# trained_models: models with a published embedding model (embedding_source) are never trained).
TRAIN_DATA = TRAINING.get("data", {}) or {}
TRAIN_MINING = TRAINING.get("mining", {}) or {}
TRAIN_SEEDS = [int(s) for s in TRAINING.get("seeds", [0])]
TRAIN_GPUS = int(TRAINING.get("gpus", 0) or 0)
MINING_ENABLED = bool(TRAIN_MINING.get("enabled", True))
MINING_MODEL = str(TRAIN_MINING.get("model", "tiny-base"))
# Keys of config["training"] that are not the trainer's own settings.
TRAINER_SKIP = {"enabled", "seeds", "analysis_seed", "data", "mining", "gpus"}


def training_targets():
    if not TRAINING_ENABLED:
        return []
    return [embedding_dir(m, s) for m in trained_models() for s in TRAIN_SEEDS]


def training_data_file():
    if MINING_ENABLED:
        return "results/data/train/mined.jsonl"
    return "results/data/train/contrastive.jsonl"


def mining_model_input(wildcards):
    if MINING_MODEL in config["models"]:
        return model_input(MINING_MODEL)
    return MINING_MODEL if os.path.exists(os.path.expanduser(MINING_MODEL)) else []


def mining_model_source():
    if MINING_MODEL in config["models"]:
        return model_source(MINING_MODEL)
    return MINING_MODEL


def trainer_settings(wildcards):
    settings = {k: v for k, v in TRAINING.items() if k not in TRAINER_SKIP}
    settings.setdefault("num_negatives", int(TRAIN_MINING.get("num_negatives", 3)))
    settings["seed"] = int(wildcards.seed)
    return settings
