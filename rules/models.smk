# Backbones: tiny models built locally (default config) or hub models prefetched on the submit node.


rule build_tiny_model:
    input:
        init=lambda wc: PLAN.build_init_input(wc.model),
        prompts=lambda wc: PLAN.build_prompts_input(wc.model),
    output:
        directory(paths.MODEL_DIR),
    log:
        "logs/build_tiny_model/{model}.log",
    benchmark:
        "results/benchmarks/build_tiny_model/{model}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    params:
        build=lambda wc: PLAN.build_settings(wc.model),
    script:
        "../workflow/scripts/build_tiny_model.py"


localrules:
    prefetch_model,


rule prefetch_model:
    output:
        paths.PREFETCH_MODEL,
    log:
        "logs/prefetch_model/{model}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        source=lambda wc: PLAN.model_spec(wc.model)["source"],
        revision=lambda wc: PLAN.model_revision(wc.model),
        cache_dir=PLAN.hub_cache_dir,
    script:
        "../workflow/scripts/prefetch_model.py"


# A published embedding model (models.<key>.embedding_source, a hub id) replaces training for
# that model: downloaded like a backbone; its record also says what format its files declare.
localrules:
    prefetch_embedding,


rule prefetch_embedding:
    output:
        paths.PREFETCH_EMBEDDING,
    log:
        "logs/prefetch_embedding/{model}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        source=lambda wc: PLAN.embedding_spec(wc.model)["source"],
        revision=lambda wc: PLAN.emb_model_revision(wc.model),
        cache_dir=PLAN.hub_cache_dir,
        embedding=True,
    script:
        "../workflow/scripts/prefetch_model.py"
