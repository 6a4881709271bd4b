# One target that downloads everything a run needs from the Hugging Face Hub: every configured
# hub model revision, the probe datasets, the training data and the mteb benchmarks' datasets.
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
        [f"results/data/probe/{d}.jsonl" for d in PROBE_DATASETS],
        [
            f"results/prefetch/mteb/{slug}.json"
            for slug, name in EVAL_BENCHMARKS.items()
            if EVALUATION_ENABLED and name != "HRSA-Local"
        ],
        "results/data/train/contrastive.jsonl" if TRAINING_ENABLED else [],
    output:
        touch("results/prefetch/done"),
    log:
        "logs/prefetch/done.log",
    conda:
        "../envs/hrsa.yaml"
