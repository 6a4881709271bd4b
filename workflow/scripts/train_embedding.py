"""Train one backbone into an embedding model: in this process, or under `accelerate launch`
with one process per GPU when the job has several (resumes from its latest checkpoint)."""

from hrsa.logs import limit_threads, to_file
from hrsa.prefetch import configure_hub

to_file(snakemake.log[0])
limit_threads(snakemake.threads)
configure_hub(snakemake.config.get("hub"))

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
