# CoT traces generated and judged by this workflow (paper Appendix C; config/README.md,
# `cot_generation`): per source, cot_problems (a local rule: it downloads, as part of the
# `prefetch` target) -> cot_generate -> cot_judge; `probe_datasets.<key>: {registry: cot,
# traces: generated}` reads the judged files (rules/data.smk). Where the models run is
# cot_generation.<role>.serve: an external endpoint is called from the submit node (a local
# rule); `local` (transformers serve) and `slurm_vllm` (vllm serve, on the GPUs the job asks
# for) start the server inside the job, health-check it and stop it afterwards. Requests are
# cached under cot_generation.cache_dir (not outputs: a failed or killed job keeps them).
# `snakemake cot_estimate` prints the requests, tokens and cost a run would send, sending none.


localrules:
    cot_problems,
    cot_estimate,


rule cot_problems:
    input:
        lambda wc: PLAN.cot_problems_input(wc.cot_source),
    output:
        paths.COT_PROBLEMS,
    log:
        "logs/cot/problems/{cot_source}.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        spec=lambda wc: PLAN.cot_source_spec(wc.cot_source),
        hf_home=PLAN.hub_cache_dir,
        mirror=PLAN.data_mirror,
    script:
        "../workflow/scripts/cot_problems.py"


rule cot_generate:
    input:
        problems=paths.COT_PROBLEMS,
        prompts=PLAN.cot_prompts_file(),
        model=PLAN.cot_endpoint_input("generator"),
    output:
        paths.COT_GENERATED,
    log:
        "logs/cot/generate/{cot_source}.log",
    localrule: PLAN.cot_is_local_rule("generator")
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        **PLAN.cot_resources("generator"),
    params:
        endpoint=lambda wc: PLAN.cot_endpoint("generator", wc.cot_source),
        requests=PLAN.cot_requests(),
        cache=lambda wc: PLAN.cot_cache_file(wc.cot_source, "generate"),
    script:
        "../workflow/scripts/cot_generate.py"


rule cot_judge:
    input:
        generated=paths.COT_GENERATED,
        prompts=PLAN.cot_prompts_file(),
        model=PLAN.cot_endpoint_input("judge"),
    output:
        judged=paths.COT_JUDGED,
        stats=paths.COT_STATS,
    log:
        "logs/cot/judge/{cot_source}.log",
    localrule: PLAN.cot_is_local_rule("judge")
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        **PLAN.cot_resources("judge"),
    params:
        endpoint=lambda wc: PLAN.cot_endpoint("judge"),
        requests=PLAN.cot_requests(),
        cache=lambda wc: PLAN.cot_cache_file(wc.cot_source, "judge"),
        source=lambda wc: PLAN.cot_source_info(wc.cot_source),
    script:
        "../workflow/scripts/cot_judge.py"


rule cot_estimate:
    input:
        problems=PLAN.cot_problem_files().values(),
        prompts=PLAN.cot_prompts_file(),
    output:
        paths.COT_ESTIMATE,
    log:
        "logs/cot/estimate.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        settings=lambda wc: PLAN.cot_estimate_settings(),
        requests=PLAN.cot_requests(),
    script:
        "../workflow/scripts/cot_estimate.py"
