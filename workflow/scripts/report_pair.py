"""One pair's layer metrics (heatmaps and k-NN curves) for every stage and dataset."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, figures, style  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
fig = figures.pair_overview(
    collect.read_metrics(snakemake.input.metrics),
    pairs[snakemake.wildcards.pair],
    stages=snakemake.params.stages,
    datasets=snakemake.params.datasets,
    dataset_labels=snakemake.params.dataset_labels,
    not_computed=snakemake.params.metrics_not_computed,
)
style.save_figure(fig, snakemake.output.png, snakemake.output.pdf)
