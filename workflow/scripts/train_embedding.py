"""Train one backbone into an embedding model: in this process, or under `accelerate launch`
with one process per GPU when the job has several (resumes from its latest checkpoint)."""

from hrsa.logs import job_setup

job_setup(snakemake, hub=True)

from hrsa.train import launch  # noqa: E402

launch(
    backbone=snakemake.params.source,
    revision=snakemake.params.revision,
    data=snakemake.input.data,
    out_dir=snakemake.output[0],
    config=snakemake.params.settings,
    model_key=snakemake.wildcards.model,
    num_processes=snakemake.params.processes,
)
