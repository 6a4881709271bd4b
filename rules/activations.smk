# Activation stores (docs/contracts.md, contract 1), keyed by model so shared backbones run once.


rule extract_activations:
    input:
        model=lambda wc: PLAN.stage_model_input(wc.model, wc.stage),
        texts=paths.PROBE_DATA,
    output:
        directory(paths.STORE),
    log:
        "logs/extract_activations/{model}/{stage}/{dataset}.log",
    benchmark:
        "results/benchmarks/extract_activations/{model}/{stage}/{dataset}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=PLAN.extraction_gpus,
    params:
        model=lambda wc: PLAN.stage_model_path(wc.model, wc.stage),
        revision=lambda wc: PLAN.stage_model_revision(wc.model, wc.stage),
        attention=lambda wc: PLAN.extraction_attention(wc.stage),
        # labelled datasets feed the cross-model probe: their stores ignore the caps
        settings=lambda wc: PLAN.extraction_settings(wc.dataset),
        device=PLAN.device,
    script:
        "../workflow/scripts/extract_activations.py"


# The pair check reads two stores' token ids (a few MB) and runs in seconds: on a cluster it runs
# on the submit node instead of waiting in the queue as dozens of tiny jobs.
localrules:
    pair_check,


rule pair_check:
    input:
        base=lambda wc: PLAN.pair_store(wc.pair, wc.stage, wc.dataset, "base"),
        reasoning=lambda wc: PLAN.pair_store(wc.pair, wc.stage, wc.dataset, "reasoning"),
    output:
        paths.PAIR_CHECK,
    log:
        "logs/pair_check/{pair}/{stage}/{dataset}.log",
    conda:
        "../envs/hrsa.yaml"
    script:
        "../workflow/scripts/pair_check.py"
