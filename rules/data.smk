# Probe datasets: generated offline, read from a local file, or downloaded (a local rule, so on a
# cluster it runs on the submit node, which has internet, as part of the `prefetch` target).
# Registry sources are read through hrsa.data.remote: `data_mirror` points them at local copies;
# files at URLs (the CoT traces) are cached under hub.cache_dir, else results/prefetch/data.
# `traces: generated` reads this workflow's own judged CoT traces instead (rules/cot.smk).


localrules:
    probe_data,


rule probe_data:
    input:
        lambda wc: PLAN.probe_local_input(wc.dataset),
    output:
        paths.PROBE_DATA,
    log:
        "logs/probe_data/{dataset}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        spec=lambda wc: PLAN.probe_spec(wc.dataset),
        hf_home=PLAN.hub_cache_dir,
        cache_dir=PLAN.data_cache_dir(),
        mirror=PLAN.data_mirror,
    script:
        "../workflow/scripts/probe_data.py"
