# Contrastive training of the backbones into embedding models (docs/contracts.md, contract 3):
# training data (each set sampled to its planned rows; Table 7 by default for hub/local data)
# -> hard-negative mining (only rows without enough annotated negatives, plain queries, the
# set's positives as the pool) -> one training job per (model, seed).


localrules:
    contrastive_data,


rule contrastive_data:
    input:
        PLAN.training_data_inputs(),
    output:
        data=paths.TRAIN_DATA,
        report=paths.TRAIN_DATA_REPORT,
    log:
        "logs/contrastive_data/contrastive.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        data=PLAN.training_data_settings(),
        mirror=PLAN.data_mirror,
    script:
        "../workflow/scripts/contrastive_data.py"


rule mine_negatives:
    input:
        data=paths.TRAIN_DATA,
        model=PLAN.mining_model_input(),
    output:
        data=paths.MINED_DATA,
        report=paths.MINED_DATA_REPORT,
    log:
        "logs/mine_negatives/mined.log",
    benchmark:
        "results/benchmarks/mine_negatives/mined.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=min(PLAN.train_gpus, 1),
    params:
        model=lambda wc: PLAN.mining_model_source(),
        revision=PLAN.mining_model_revision(),
        cache_dir=paths.MINING_CACHE,
        device=PLAN.device,
        settings=PLAN.mining_settings(),
    script:
        "../workflow/scripts/mine_negatives.py"


rule train_embedding:
    input:
        model=lambda wc: PLAN.model_input(wc.model),
        data=PLAN.training_data_file(),
    output:
        directory(paths.EMBEDDING_DIR),
    log:
        "logs/train_embedding/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_embedding/{model}/seed{seed}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=PLAN.train_gpus,
    params:
        source=lambda wc: PLAN.model_source(wc.model),
        revision=lambda wc: PLAN.model_revision(wc.model),
        settings=lambda wc: PLAN.trainer_settings(wc.seed),
        processes=PLAN.train_processes,
    script:
        "../workflow/scripts/train_embedding.py"


# The same recipe with LoRA adapters (training.lora, paper Table 6), saved merged: it loads like
# a full embedding model.
rule train_embedding_lora:
    input:
        model=lambda wc: PLAN.model_input(wc.model),
        data=PLAN.training_data_file(),
    output:
        directory(paths.LORA_EMBEDDING_DIR),
    log:
        "logs/train_embedding/{model}/lora-seed{seed}.log",
    benchmark:
        "results/benchmarks/train_embedding/{model}/lora-seed{seed}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=PLAN.train_gpus,
    params:
        source=lambda wc: PLAN.model_source(wc.model),
        revision=lambda wc: PLAN.model_revision(wc.model),
        settings=lambda wc: PLAN.trainer_settings(wc.seed, lora=True),
        processes=PLAN.train_processes,
    script:
        "../workflow/scripts/train_embedding.py"
