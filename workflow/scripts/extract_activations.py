"""Extract every hidden state of one model at one stage on one probe dataset into a store."""

from hrsa.logs import job_setup

job_setup(snakemake, hub=True)

from hrsa.activations import extract_stage  # noqa: E402

extract_stage(
    model=snakemake.params.model,
    revision=snakemake.params.revision,
    stage=snakemake.wildcards.stage,
    texts=snakemake.input.texts,
    store=snakemake.output[0],
    model_key=snakemake.wildcards.model,
    dataset_key=snakemake.wildcards.dataset,
    attention=snakemake.params.attention,
    device=snakemake.params.device,
    **snakemake.params.settings,
)
