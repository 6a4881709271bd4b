"""HRSA of one pair x stage x dataset: two activation stores -> metrics.csv + summary.json."""

from hrsa.logs import job_setup

job_setup(snakemake)

from hrsa.metrics import HRSASettings, compare_stores  # noqa: E402
from hrsa.metrics.registry import load_plugins  # noqa: E402

load_plugins(snakemake.params.plugins)
result = compare_stores(
    snakemake.input.base,
    snakemake.input.reasoning,
    HRSASettings.from_config(snakemake.params.settings),
)
result.write(
    snakemake.output.metrics,
    snakemake.output.summary,
    pair=snakemake.wildcards.pair,
    stage=snakemake.wildcards.stage,
    dataset=snakemake.wildcards.dataset,
)
