# One target that downloads everything a run needs from the Hugging Face Hub: every configured
# hub model revision, every published embedding model (models.<key>.embedding_source), the probe
# datasets, the training data (when a model is trained) and the mteb benchmarks' datasets.
# Run it on a node with internet (the submit node); compute jobs then run offline.
#   snakemake prefetch --cores 1 --configfile config/paper.yaml


localrules:
    prefetch,


rule prefetch:
    input:
        [
            f"results/prefetch/models/{m}.json"
            for m in MODELS
            if not is_built(m) and not os.path.exists(model_spec(m)["source"])
        ],
        [
            f"results/prefetch/embeddings/{m}.json"
            for m in published_models()
            if not published_is_local(m)
        ],
        [f"results/data/probe/{d}.jsonl" for d in PROBE_DATASETS],
        [
            f"results/prefetch/mteb/{slug}.json"
            for slug, name in EVAL_BENCHMARKS.items()
            if EVALUATION_ENABLED and name != "HRSA-Local"
        ],
        "results/data/train/contrastive.jsonl" if trained_models() else [],
    output:
        touch("results/prefetch/done"),
    log:
        "logs/prefetch/done.log",
    conda:
        "../envs/hrsa.yaml"
