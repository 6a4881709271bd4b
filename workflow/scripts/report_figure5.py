"""Figure 5: training dynamics of one pair, HRSA headline numbers against the training step."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, figures, style  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
fig = figures.figure5(
    collect.read_headlines(snakemake.input.summaries),
    pairs[snakemake.wildcards.pair],
    datasets=snakemake.params.datasets,
    dataset_labels=snakemake.params.dataset_labels,
    not_computed=snakemake.params.metrics_not_computed,
)
style.save_figure(fig, snakemake.output.png, snakemake.output.pdf)
