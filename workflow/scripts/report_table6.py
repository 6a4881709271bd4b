"""Table 6: LoRA vs full fine-tuning of the embedding models, from MTEB's per-run summary."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

import pandas as pd  # noqa: E402

from hrsa.report import tables  # noqa: E402

table = tables.table6(
    pd.read_csv(snakemake.input.summary),
    snakemake.params.models,
    snakemake.params.benchmarks,
    labels=snakemake.params.labels,
    score=snakemake.params.score,
    adapter=snakemake.params.adapter,
)
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
