"""Table 1: mean embedding benchmark scores per pair, from the evaluation stage's table1.csv, and
its appendix: every evaluated task's instruction and where it came from (instructions.csv).

A pair with a published checkpoint (config key models.<key>.embedding_source; the CSV's
base_embedding / reasoning_embedding say which member) is marked with † and listed below
(hrsa.report.tables.table1); the note under the table names the instruction set.
"""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, tables  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
instructions = collect.read_instructions(snakemake.input.instructions)
table = tables.table1(
    collect.read_table1(snakemake.input.table),
    pairs,
    models=snakemake.params.models,
    instructions=instructions,
)
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
tables.instructions_appendix(instructions).write(
    csv=snakemake.output.appendix_csv, markdown=snakemake.output.appendix_md
)
