"""Figures 6-11: one layer metric (heatmaps or k-NN curves) of every pair, per dataset."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, figures, style  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
metrics = collect.read_metrics(snakemake.input.metrics)
options = dict(
    stage=snakemake.params.stage,
    datasets=snakemake.params.datasets,
    dataset_labels=snakemake.params.dataset_labels,
)
if snakemake.params.metric == "knn_overlap":
    fig = figures.knn_grid(metrics, pairs, **options)
else:
    fig = figures.layer_grid(metrics, pairs, metric=snakemake.params.metric, **options)
style.save_figure(fig, snakemake.output.png, snakemake.output.pdf)
