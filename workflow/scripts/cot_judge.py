"""Judge one source's CoT traces (Prompts 3-4); writes the judged traces and their statistics."""

from hrsa.logs import job_setup

# threads: the environment of a server the job starts (transformers serve on CPU); hub: offline
job_setup(snakemake, hub=True)

from hrsa.cot.pipeline import judge  # noqa: E402

judge(
    snakemake.input.generated,
    snakemake.output.judged,
    snakemake.output.stats,
    endpoint=snakemake.params.endpoint,
    requests=snakemake.params.requests,
    prompts_path=snakemake.input.prompts,
    cache_path=snakemake.params.cache,
    source_spec=snakemake.params.source,
    server_log=f"{snakemake.log[0]}.server.log",
)
