"""Figure 3: heatmaps of dimension-wise correlation and linear CKA, LLM vs embedding model."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, figures, style  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
fig = figures.figure3(
    collect.read_metrics(snakemake.input.metrics),
    pairs,
    pair_keys=snakemake.params.figure_pairs,
    dataset=snakemake.params.dataset,
    stages=snakemake.params.stages,
    not_computed=snakemake.params.metrics_not_computed,
)
style.save_figure(fig, snakemake.output.png, snakemake.output.pdf)
