"""Cross-model linear probe of one pair x stage x labelled dataset -> probe.csv.

``params.settings`` (``hrsa.plan.Plan.probe_settings(dataset)``) carry the dataset's target: a
class target gets the logistic probe (seed, C, max_iter), a numeric one the ridge probe (seed,
alpha, ``task: numeric``)."""

from hrsa.logs import job_setup

job_setup(snakemake)

from hrsa.metrics import probe_stores, write_probe_csv  # noqa: E402

rows = probe_stores(snakemake.input.base, snakemake.input.reasoning, **snakemake.params.settings)
write_probe_csv(rows, snakemake.output[0])
