# MTEB evaluation of the embedding models (docs/contracts.md, contract 4) and the paper's Table 1.
# Runs, seeds and settings: hrsa.plan.Plan (eval_runs, score_files, eval_settings). mteb is never
# imported at parse time.
from hrsa.evaluate.names import EVALUATION_STAGES, evaluated_model_name


rule evaluate_mteb:
    input:
        model=lambda wc: PLAN.eval_model_input(wc.model, wc.stage, wc.seed),
        prompts=PLAN.eval_prompts(),
        authors=PLAN.eval_authors_input(),
        data=lambda wc: PLAN.eval_data_input(wc.bench),
    output:
        cache=directory(paths.MTEB_CACHE),
        scores=paths.MTEB_SCORES,
        instructions=paths.MTEB_INSTRUCTIONS,
    log:
        "logs/evaluate_mteb/{model}/{stage}/seed{seed}/{bench}.log",
    benchmark:
        "results/benchmarks/evaluate_mteb/{model}/{stage}/seed{seed}/{bench}.tsv"
    wildcard_constraints:
        stage=paths.alternatives(EVALUATION_STAGES),
        bench=paths.alternatives(PLAN.benchmarks),
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=PLAN.evaluation["gpus"],
    params:
        source=lambda wc: PLAN.eval_model_source(wc.model, wc.stage, wc.seed),
        revision=lambda wc: PLAN.eval_model_revision(wc.model, wc.stage),
        benchmark_name=lambda wc: PLAN.benchmarks[wc.bench],
        tasks=lambda wc: PLAN.eval_tasks(wc.bench),
        model_name=lambda wc: evaluated_model_name(wc.model, wc.stage, wc.seed),
        device=PLAN.device,
        authors=PLAN.eval_instruction_settings(),
        settings=PLAN.eval_settings(),
    script:
        "../workflow/scripts/evaluate_mteb.py"


# Table 1 reads a few CSVs: a local rule (never a cluster job).
localrules:
    mteb_table1,


rule mteb_table1:
    input:
        scores=[f["path"] for f in PLAN.score_files()],
        instructions=[f["path"] for f in PLAN.instruction_files()],
    output:
        table=paths.TABLE1,
        markdown="results/mteb/table1.md",
        backbone="results/mteb/table1_backbone.csv",
        summary=paths.MTEB_SUMMARY,
        instructions=paths.INSTRUCTIONS,
    log:
        "logs/mteb_table1.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        **PLAN.table1_settings(),
    script:
        "../workflow/scripts/table1.py"


localrules:
    prefetch_mteb,


rule prefetch_mteb:
    output:
        paths.PREFETCH_MTEB,
    log:
        "logs/prefetch_mteb/{bench}.log",
    wildcard_constraints:
        bench=paths.alternatives(PLAN.benchmarks),
    conda:
        "../envs/hrsa.yaml"
    params:
        benchmark_name=lambda wc: PLAN.benchmarks[wc.bench],
        tasks=lambda wc: PLAN.eval_tasks(wc.bench),
        cache_dir=PLAN.hub_cache_dir,
    script:
        "../workflow/scripts/prefetch_mteb.py"


# The authors' instruction files (evaluation.prompts: {authors: <URL>, authors_bright: <URL>}),
# downloaded on the submit node, checked to parse, with their sha256 recorded
# (hrsa.prefetch.prefetch_authors_file). A local path needs no download.
localrules:
    prefetch_prompts,


rule prefetch_prompts:
    output:
        file=paths.PREFETCH_PROMPTS,
        record=paths.PREFETCH_PROMPTS_RECORD,
    log:
        "logs/prefetch_prompts/{source}.log",
    wildcard_constraints:
        source=paths.alternatives(paths.AUTHORS_PROMPTS),
    conda:
        "../envs/hrsa.yaml"
    params:
        url=lambda wc: PLAN.prompt_url(wc.source),
    script:
        "../workflow/scripts/prefetch_prompts.py"
