"""The CoT generation's dry run: requests, tokens and cost per source, nothing sent."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.cot.pipeline import write_dry_run  # noqa: E402

write_dry_run(
    snakemake.output[0],
    settings=snakemake.params.settings,
    requests=snakemake.params.requests,
    prompts_path=snakemake.input.prompts,
)
