"""Positive-aware hard-negative mining of the training examples (cached per mining model)."""

from hrsa.logs import limit_threads, to_file
from hrsa.prefetch import configure_hub

to_file(snakemake.log[0])
limit_threads(snakemake.threads)
configure_hub(snakemake.config.get("hub"))

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
