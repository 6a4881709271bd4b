# HRSA of every pair x stage x dataset (docs/contracts.md, contract 2) and the cross-model
# linear probe. Settings and targets: hrsa.plan.Plan (hrsa_settings, probe_settings, hrsa_targets).


rule hrsa:
    input:
        base=lambda wc: PLAN.pair_store(wc.pair, wc.stage, wc.dataset, "base"),
        reasoning=lambda wc: PLAN.pair_store(wc.pair, wc.stage, wc.dataset, "reasoning"),
        plugins=PLAN.hrsa_plugin_files(),
    output:
        metrics=f"{paths.HRSA_DIR}/metrics.csv",
        summary=f"{paths.HRSA_DIR}/summary.json",
    log:
        "logs/hrsa/{pair}/{stage}/{dataset}.log",
    benchmark:
        "results/benchmarks/hrsa/{pair}/{stage}/{dataset}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=PLAN.hrsa_gpus,
    params:
        settings=PLAN.hrsa_settings(),
        plugins=PLAN.hrsa_plugins(),
    script:
        "../workflow/scripts/hrsa_metrics.py"


rule cross_model_probe:
    input:
        base=lambda wc: PLAN.pair_store(wc.pair, wc.stage, wc.dataset, "base"),
        reasoning=lambda wc: PLAN.pair_store(wc.pair, wc.stage, wc.dataset, "reasoning"),
        plugins=PLAN.probe_plugin_files(),
    output:
        **PLAN.probe_outputs(),
    log:
        "logs/cross_model_probe/{pair}/{stage}/{dataset}.log",
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    params:
        settings=lambda wc: PLAN.probe_settings(wc.dataset),
        plugins=PLAN.probe_plugins(),
    script:
        "../workflow/scripts/cross_model_probe.py"
