# Probe datasets: generated offline, read from a local file, or downloaded (a local rule, so on a
# cluster it runs on the submit node, which has internet).


localrules:
    probe_data,


rule probe_data:
    input:
        lambda wc: config["probe_datasets"][wc.dataset].get("local", []),
    output:
        "results/data/probe/{dataset}.jsonl",
    log:
        "logs/probe_data/{dataset}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        spec=lambda wc: config["probe_datasets"][wc.dataset],
        cache_dir=config.get("hub", {}).get("cache_dir"),
    script:
        "../workflow/scripts/probe_data.py"
