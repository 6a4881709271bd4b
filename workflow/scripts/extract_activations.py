"""Extract every hidden state of one model on one probe dataset into an activation store."""

from hrsa.logs import limit_threads, to_file
from hrsa.prefetch import configure_hub

to_file(snakemake.log[0])
limit_threads(snakemake.threads)
configure_hub(snakemake.config.get("hub"))

from hrsa.activations import extract  # noqa: E402

extract(
    model=snakemake.params.model,
    texts=snakemake.input.texts,
    store=snakemake.output[0],
    model_key=snakemake.wildcards.model,
    dataset_key=snakemake.wildcards.dataset,
    stage=snakemake.wildcards.stage,
    revision=snakemake.params.revision,
    attention=snakemake.params.attention,
    device=snakemake.params.device,
    **snakemake.params.settings,
)
