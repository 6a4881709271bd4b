"""Tables 12 (LLMs) and 13 (embedding models): H_inv of O* across datasets."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, tables  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
table = tables.h_inv_across_datasets(
    collect.read_headlines(snakemake.input.summaries),
    pairs,
    stage=snakemake.params.stage,
    datasets=snakemake.params.datasets,
    dataset_labels=snakemake.params.dataset_labels,
)
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
