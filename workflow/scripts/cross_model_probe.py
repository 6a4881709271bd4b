"""Cross-model linear probe of one pair x stage x labelled dataset -> probe.csv, and the labelled
extra metrics (hrsa.probe.extra_metrics, e.g. behavioural_consistency) -> probe_metrics.csv.

``params.settings`` (``hrsa.plan.Plan.probe_settings(dataset)``) carry the dataset's target: a
class target gets the logistic probe (seed, C, max_iter) and the extra metrics, a numeric one the
ridge probe (seed, alpha, ``task: numeric``)."""

from hrsa.logs import job_setup

job_setup(snakemake)

from hrsa.metrics import (  # noqa: E402
    probe_and_metrics,
    write_probe_csv,
    write_probe_metrics_csv,
)
from hrsa.metrics.registry import load_plugins  # noqa: E402

load_plugins(snakemake.params.plugins)  # labelled extra metrics they register

rows, values = probe_and_metrics(
    snakemake.input.base, snakemake.input.reasoning, **snakemake.params.settings
)
write_probe_csv(rows, snakemake.output.probe)
if "metrics" in snakemake.output.keys():
    write_probe_metrics_csv(values, snakemake.output.metrics)
