"""Table 11 (the generated CoT dataset's yield per source) and the dataset's card."""

import json

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report.cot import cot_card, table11  # noqa: E402
from hrsa.report.output import write_text  # noqa: E402

stats = []
for path in snakemake.input:
    with open(path, encoding="utf-8") as handle:
        stats.append(json.load(handle))
table11(stats).write(csv=snakemake.output.csv, markdown=snakemake.output.md)
write_text(snakemake.output.card, cot_card(stats))
