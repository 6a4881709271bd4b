# Activation stores (DESIGN.md contract 1), keyed by model so shared backbones run once.

from hrsa.activations import extraction_settings


rule extract_activations:
    input:
        model=stage_model_input,
        texts="results/data/probe/{dataset}.jsonl",
    output:
        directory("results/activations/{model}/{stage}/{dataset}"),
    log:
        "logs/extract_activations/{model}/{stage}/{dataset}.log",
    benchmark:
        "results/benchmarks/extract_activations/{model}/{stage}/{dataset}.tsv"
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=config["activations"].get("gpus", 0),
    params:
        model=stage_model_path,
        revision=stage_model_revision,
        attention=lambda wc: (
            config["activations"].get("attention", "bidirectional")
            if wc.stage in ("backbone", "step0")
            else "bidirectional"
        ),
        # labelled datasets feed the cross-model probe: their stores ignore the caps (every row)
        settings=lambda wc: extraction_settings(
            config["activations"],
            wc.dataset,
            keep_all=[
                d for d, s in config["probe_datasets"].items() if s.get("labelled")
            ],
        ),
        device=config.get("device", "auto"),
    script:
        "../workflow/scripts/extract_activations.py"


# The pair check reads two stores' token ids (a few MB) and runs in seconds: on a cluster it runs
# on the submit node instead of waiting in the queue as dozens of tiny jobs.
localrules:
    pair_check,


rule pair_check:
    input:
        base=lambda wc: pair_store(wc, "base"),
        reasoning=lambda wc: pair_store(wc, "reasoning"),
    output:
        "results/checks/{pair}/{stage}/{dataset}.json",
    log:
        "logs/pair_check/{pair}/{stage}/{dataset}.log",
    conda:
        "../envs/hrsa.yaml"
    script:
        "../workflow/scripts/pair_check.py"
