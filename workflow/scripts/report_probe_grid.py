"""Figures 12-13: cross-model linear probe accuracy of every pair."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, figures, style  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
fig = figures.probe_grid(
    collect.read_probes(snakemake.input.probes),
    pairs,
    stage=snakemake.params.stage,
    datasets=[snakemake.params.dataset],
    dataset_labels=snakemake.params.dataset_labels,
)
style.save_figure(fig, snakemake.output.png, snakemake.output.pdf)
