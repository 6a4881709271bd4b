"""Table 1: per pair and benchmark, base / reasoning means over seeds and the delta (std); and the
instructions of every evaluated task, gathered from the runs."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

import logging  # noqa: E402

from hrsa.evaluate.aggregate import ScoreFile, write_table1  # noqa: E402

table, problems = write_table1(
    [ScoreFile(**f) for f in snakemake.params.files],
    pairs=snakemake.params.pairs,
    benchmarks=snakemake.params.benchmarks,
    labels=snakemake.params.labels,
    score=snakemake.params.score,
    published=snakemake.params.get("published") or {},
    table_csv=snakemake.output.table,
    table_md=snakemake.output.markdown,
    summary_csv=snakemake.output.summary,
    backbone_csv=snakemake.output.backbone,
    instruction_files=[ScoreFile(**f) for f in snakemake.params.instruction_files],
    instructions_csv=snakemake.output.instructions,
)
for problem in problems:
    logging.getLogger("hrsa.evaluate").warning("left out: %s", problem)
