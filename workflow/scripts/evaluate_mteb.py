"""Evaluate one model (trained embedding model or backbone) on one benchmark through mteb."""

from hrsa.logs import job_setup

job_setup(snakemake, hub=True)

from hrsa.evaluate.run import evaluate_benchmark  # noqa: E402

evaluate_benchmark(
    snakemake.params.source,
    cache_dir=snakemake.output.cache,
    scores_csv=snakemake.output.scores,
    instructions_csv=snakemake.output.instructions,
    benchmark=snakemake.params.benchmark_name,
    model_name=snakemake.params.model_name,
    revision=snakemake.params.revision,
    tasks=snakemake.params.tasks,
    prompts=snakemake.input.prompts,
    authors=snakemake.params.authors,
    device=snakemake.params.device,
    **snakemake.params.settings,
)
