"""The Table 8 alternatives figure: every extra metric (hrsa.extra_metrics) per hidden state, and
the labelled ones of the cross-model probe (hrsa.probe.extra_metrics) per pair."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.metrics.registry import REGISTRY, load_plugins  # noqa: E402
from hrsa.report import collect, figures, style  # noqa: E402
from hrsa.report.output import write_text  # noqa: E402

load_plugins(snakemake.params.plugins)  # their registrations give each panel its level
pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
labelled = list(snakemake.params.probe_metrics) if snakemake.input.probe_metrics else []
names = list(snakemake.params.metrics) + labelled
dataset = snakemake.params.dataset
data = figures.extra_metrics_data(
    collect.read_metrics(snakemake.input.metrics),
    pairs,
    list(snakemake.params.metrics),
    dataset,
    probe_metrics=collect.read_probe_metrics(snakemake.input.probe_metrics),
    labelled=labelled,
    probe_dataset=snakemake.params.probe_dataset,
)
write_text(snakemake.output.csv, data.to_csv(index=False))
fig = figures.extra_metrics_figure(
    data,
    pairs,
    names,
    {n: REGISTRY[n].level for n in names if n in REGISTRY},
    dataset=dataset,
)
style.save_figure(fig, snakemake.output.png, snakemake.output.pdf)
