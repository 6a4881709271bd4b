"""Contrastive training examples (synthetic, hub or local files) -> one JSONL file + its report.

Each set is sampled to the rows the config plans (hrsa.data.contrastive.planned_rows); remote
sets are read through hrsa.data.remote (the Hub, its cache, or config["data_mirror"]).
"""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.data.contrastive import report_path, write_training_data  # noqa: E402

if str(report_path(snakemake.output.data)) != str(snakemake.output.report):
    raise ValueError("the report must be <data>.report.json")
write_training_data(
    dict(snakemake.params.data), snakemake.output.data, mirror=snakemake.params.mirror
)
