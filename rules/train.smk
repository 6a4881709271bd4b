# Contrastive training of the backbones into embedding models (DESIGN.md contract 3):
# training data (each set sampled to its planned rows; Table 7 by default for hub/local data)
# -> hard-negative mining (only rows without enough annotated negatives, plain queries, the
# set's positives as the pool) -> one training job per (model, seed).


include: "train_inputs.smk"


localrules:
    contrastive_data,


rule contrastive_data:
    input:
        list((TRAIN_DATA.get("files") or {}).values()),
    output:
        data="results/data/train/contrastive.jsonl",
        report="results/data/train/contrastive.jsonl.report.json",
    log:
        "logs/contrastive_data/contrastive.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        data=TRAIN_DATA,
        mirror=config.get("data_mirror"),
    script:
        "../workflow/scripts/contrastive_data.py"


rule mine_negatives:
    input:
        data="results/data/train/contrastive.jsonl",
        model=mining_model_input,
    output:
        data="results/data/train/mined.jsonl",
        report="results/data/train/mined.jsonl.report.json",
    log:
        "logs/mine_negatives/mined.log",
    benchmark:
        "results/benchmarks/mine_negatives/mined.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=min(TRAIN_GPUS, 1),
    params:
        model=mining_model_source(),
        revision=(
            model_spec(MINING_MODEL).get("revision")
            if MINING_MODEL in config["models"]
            else TRAIN_MINING.get("revision")
        ),
        cache_dir="results/data/train/mining-cache",
        device=config.get("device", "auto"),
        settings={
            "num_negatives": int(TRAIN_MINING.get("num_negatives", 3)),
            "relative_margin": float(TRAIN_MINING.get("relative_margin", 0.05)),
            "range_max": int(TRAIN_MINING.get("range_max", 100)),
            "range_max_fraction": float(TRAIN_MINING.get("range_max_fraction", 0.1)),
            "batch_size": int(TRAIN_MINING.get("batch_size", 32)),
            "use_faiss": bool(TRAIN_MINING.get("use_faiss", False)),
            "max_length": int(TRAIN_MINING.get("max_length", 512)),
        },
    script:
        "../workflow/scripts/mine_negatives.py"


rule train_embedding:
    input:
        model=model_input,
        data=training_data_file(),
    output:
        directory("results/embeddings/{model}/seed{seed}"),
    log:
        "logs/train_embedding/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_embedding/{model}/seed{seed}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=TRAIN_GPUS,
    params:
        source=model_source,
        revision=lambda wc: model_spec(wc.model).get("revision"),
        settings=trainer_settings,
        processes=max(1, TRAIN_GPUS),
    script:
        "../workflow/scripts/train_embedding.py"
