"""Positive-aware hard-negative mining of the training examples (cached per mining model)."""

from hrsa.logs import job_setup

job_setup(snakemake, hub=True)

from hrsa.mining import mine_file  # noqa: E402

mine_file(
    snakemake.input.data,
    snakemake.output.data,
    model=snakemake.params.model,
    revision=snakemake.params.revision,
    cache_dir=snakemake.params.cache_dir,
    device=snakemake.params.device,
    **snakemake.params.settings,
)
