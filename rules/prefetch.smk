# One target that downloads everything a run needs from the Hugging Face Hub: every configured
# hub model revision, every published embedding model (models.<key>.embedding_source), the probe
# datasets, the training data (when a model is trained), the mteb benchmarks' datasets and the
# authors' instruction files given as URLs (evaluation.prompts.authors, rule prefetch_prompts)
# (hrsa.plan.Plan.prefetch_inputs). Run it on a node with internet (the submit node); compute
# jobs then run offline.
#   snakemake prefetch --cores 1 --configfile config/paper.yaml


localrules:
    prefetch,


rule prefetch:
    input:
        PLAN.prefetch_inputs(),
    output:
        touch(paths.PREFETCH_DONE),
    log:
        "logs/prefetch/done.log",
    conda:
        "../envs/hrsa.yaml"
