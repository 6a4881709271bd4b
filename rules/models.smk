# Backbones: tiny models built locally (default config) or hub models prefetched on the submit node.


rule build_tiny_model:
    input:
        init=lambda wc: (
            model_dir(model_spec(wc.model)["build"]["init"])
            if "init" in model_spec(wc.model).get("build", {})
            else []
        ),
    output:
        directory("results/models/{model}"),
    log:
        "logs/build_tiny_model/{model}.log",
    benchmark:
        "results/benchmarks/build_tiny_model/{model}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    params:
        build=lambda wc: model_spec(wc.model)["build"],
    script:
        "../workflow/scripts/build_tiny_model.py"


localrules:
    prefetch_model,


rule prefetch_model:
    output:
        "results/prefetch/models/{model}.json",
    log:
        "logs/prefetch_model/{model}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        source=lambda wc: model_spec(wc.model)["source"],
        revision=lambda wc: model_spec(wc.model).get("revision"),
        cache_dir=config.get("hub", {}).get("cache_dir"),
    script:
        "../workflow/scripts/prefetch_model.py"


# A published embedding model (models.<key>.embedding_source, a hub id) replaces training for
# that model: downloaded like a backbone; its record also says what format its files declare.
localrules:
    prefetch_embedding,


rule prefetch_embedding:
    output:
        "results/prefetch/embeddings/{model}.json",
    log:
        "logs/prefetch_embedding/{model}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        source=lambda wc: embedding_spec(wc.model)["source"],
        revision=lambda wc: embedding_spec(wc.model).get("revision"),
        cache_dir=config.get("hub", {}).get("cache_dir"),
        embedding=True,
    script:
        "../workflow/scripts/prefetch_model.py"
