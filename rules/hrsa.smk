# HRSA of every pair x stage x dataset (DESIGN.md contract 2) and the cross-model linear probe.
# Settings and targets: rules/hrsa_inputs.smk.


include: "hrsa_inputs.smk"


rule hrsa:
    input:
        base=lambda wc: pair_store(wc, "base"),
        reasoning=lambda wc: pair_store(wc, "reasoning"),
    output:
        metrics="results/hrsa/{pair}/{stage}/{dataset}/metrics.csv",
        summary="results/hrsa/{pair}/{stage}/{dataset}/summary.json",
    log:
        "logs/hrsa/{pair}/{stage}/{dataset}.log",
    benchmark:
        "results/benchmarks/hrsa/{pair}/{stage}/{dataset}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=config["hrsa"].get("gpus", 0),
    params:
        settings=hrsa_settings(),
    script:
        "../workflow/scripts/hrsa.py"


rule cross_model_probe:
    input:
        base=lambda wc: pair_store(wc, "base"),
        reasoning=lambda wc: pair_store(wc, "reasoning"),
    output:
        "results/hrsa/{pair}/{stage}/{dataset}/probe.csv",
    log:
        "logs/cross_model_probe/{pair}/{stage}/{dataset}.log",
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    params:
        settings={
            k: v
            for k, v in config["hrsa"].get("probe", {}).items()
            if k in ("seed", "C", "max_iter")
        },
    script:
        "../workflow/scripts/cross_model_probe.py"
