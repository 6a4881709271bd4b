"""The tiny pairs' training on their verifiable task: reward curve, held-out accuracy, dW/W."""

import json
from pathlib import Path

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import figures, style  # noqa: E402
from hrsa.report.output import write_text  # noqa: E402

models = snakemake.params.models
keys = list(snakemake.params.task_models)
records = {
    k: json.loads((Path(d) / "hrsa_build.json").read_text())
    for k, d in zip(keys, snakemake.input.records, strict=True)
}
labels = {k: models.get(k, {}).get("label", k) for k in keys}
write_text(snakemake.output.csv, figures.task_training_table(records, labels).to_csv(index=False))
style.save_figure(
    figures.task_training_figure(records, labels), snakemake.output.png, snakemake.output.pdf
)
