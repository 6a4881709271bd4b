"""Generate one source's CoT traces (Prompts 1-2), through the request cache."""

from hrsa.logs import job_setup

# threads: the environment of a server the job starts (transformers serve on CPU); hub: offline
job_setup(snakemake, hub=True)

from hrsa.cot.pipeline import generate  # noqa: E402

generate(
    snakemake.input.problems,
    snakemake.output[0],
    endpoint=snakemake.params.endpoint,
    requests=snakemake.params.requests,
    prompts_path=snakemake.input.prompts,
    cache_path=snakemake.params.cache,
    server_log=f"{snakemake.log[0]}.server.log",
)
