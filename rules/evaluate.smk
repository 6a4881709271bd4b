# MTEB evaluation of the embedding models (DESIGN.md contract 4) and the paper's Table 1.
# Uses from common.smk: PAIRS, TRAINING, TRAINING_ENABLED, EVALUATION_ENABLED, THREADS,
# _alternatives, model_spec, model_input, model_source, embedding_models, is_published,
# emb_model_input, emb_model_source, emb_model_revision. Settings:
# config["evaluation"] (keys in config/README.md). mteb is never imported at parse time.
from hrsa.evaluate.names import evaluated_model_name, slugs_to_names

EVALUATION = config.get("evaluation", {})
EVAL_BENCHMARKS = slugs_to_names(EVALUATION.get("benchmarks", ["HRSA-Local"]))
EVAL_SEEDS = [int(s) for s in EVALUATION.get("seeds", [0])]
EVAL_PROMPTS = EVALUATION.get("prompts", "config/prompts.yaml")
if not os.path.isabs(EVAL_PROMPTS) and not os.path.exists(EVAL_PROMPTS):
    EVAL_PROMPTS = os.path.join(workflow.basedir, EVAL_PROMPTS)  # run with -d elsewhere
EVAL_MODELS = embedding_models()  # trained and published embedding models
# evaluation seeds are training seeds: checked with the config (hrsa.config.check_plan)
# (model, stage, seed, benchmark slug) of every run; a backbone is deterministic, so it is
# evaluated once and filed under the first seed; so is a published embedding model (one
# checkpoint, whatever the training seeds).
EVAL_RUNS = [
    (m, "emb", s, b)
    for m in EVAL_MODELS
    for s in (EVAL_SEEDS[:1] if is_published(m) else EVAL_SEEDS)
    for b in EVAL_BENCHMARKS
] + [
    (m, "backbone", EVAL_SEEDS[0], b)
    for m in EVAL_MODELS
    for b in EVAL_BENCHMARKS
    if EVALUATION.get("evaluate_backbone", False)
]
EVAL_SCORE_FILES = [
    {
        "model": m,
        "stage": st,
        "seed": s,
        "benchmark": EVAL_BENCHMARKS[b],
        "path": f"results/mteb/{m}/{st}/seed{s}/{b}.csv",
    }
    for m, st, s, b in EVAL_RUNS
]
# Table 1 pulls every evaluation run; it needs embedding models (trained or published).
evaluation_targets = lambda: (
    ["results/mteb/table1.csv", "results/mteb/table1.md"]
    if EVALUATION_ENABLED and EVAL_MODELS
    else []
)


rule evaluate_mteb:
    input:
        model=lambda wc: (
            model_input(wc.model)
            if wc.stage == "backbone"
            else emb_model_input(wc.model, wc.seed)
        ),
        prompts=EVAL_PROMPTS,
        data=lambda wc: (
            []
            if EVAL_BENCHMARKS[wc.bench] == "HRSA-Local"
            else f"results/prefetch/mteb/{wc.bench}.json"
        ),
    output:
        cache=directory("results/mteb/{model}/{stage}/seed{seed}/{bench}"),
        scores="results/mteb/{model}/{stage}/seed{seed}/{bench}.csv",
    log:
        "logs/evaluate_mteb/{model}/{stage}/seed{seed}/{bench}.log",
    benchmark:
        "results/benchmarks/evaluate_mteb/{model}/{stage}/seed{seed}/{bench}.tsv"
    wildcard_constraints:
        stage="emb|backbone",
        bench=_alternatives(list(EVAL_BENCHMARKS)),
    conda:
        "../envs/hrsa.yaml"
    threads: THREADS
    resources:
        gpu=EVALUATION.get("gpus", 0),
    params:
        source=lambda wc: (
            model_source(wc.model)
            if wc.stage == "backbone"
            else emb_model_source(wc.model, wc.seed)
        ),
        revision=lambda wc: (
            model_spec(wc.model).get("revision")
            if wc.stage == "backbone"
            else emb_model_revision(wc.model)
        ),
        benchmark_name=lambda wc: EVAL_BENCHMARKS[wc.bench],
        tasks=lambda wc: (EVALUATION.get("tasks") or {}).get(EVAL_BENCHMARKS[wc.bench]),
        model_name=lambda wc: evaluated_model_name(wc.model, wc.stage, wc.seed),
        device=config.get("device", "auto"),
        settings={
            "batch_size": EVALUATION.get("batch_size", 16),
            "max_length": EVALUATION.get("max_length", 128),
            "dtype": EVALUATION.get("dtype", "auto"),
            "seed": EVALUATION.get("mteb_seed", 1016),
            "allow_missing": EVALUATION.get("allow_missing", False),
        },
    script:
        "../workflow/scripts/evaluate_mteb.py"


rule mteb_table1:
    input:
        scores=[f["path"] for f in EVAL_SCORE_FILES],
    output:
        table="results/mteb/table1.csv",
        markdown="results/mteb/table1.md",
        backbone="results/mteb/table1_backbone.csv",
        summary="results/mteb/summary.csv",
    log:
        "logs/mteb_table1.log",
    conda:
        "../envs/hrsa.yaml"
    params:
        files=EVAL_SCORE_FILES,
        pairs=config["pairs"],
        benchmarks=list(EVAL_BENCHMARKS.values()),
        labels={m: spec.get("label", m) for m, spec in config["models"].items()},
        published={m: embedding_spec(m)["source"] for m in published_models()},
        score=EVALUATION.get("table1_score", "mean_task"),
    script:
        "../workflow/scripts/table1.py"


localrules:
    prefetch_mteb,


rule prefetch_mteb:
    output:
        "results/prefetch/mteb/{bench}.json",
    log:
        "logs/prefetch_mteb/{bench}.log",
    wildcard_constraints:
        bench=_alternatives(list(EVAL_BENCHMARKS)),
    conda:
        "../envs/hrsa.yaml"
    params:
        benchmark_name=lambda wc: EVAL_BENCHMARKS[wc.bench],
        tasks=lambda wc: (EVALUATION.get("tasks") or {}).get(EVAL_BENCHMARKS[wc.bench]),
        cache_dir=config.get("hub", {}).get("cache_dir"),
    script:
        "../workflow/scripts/prefetch_mteb.py"
