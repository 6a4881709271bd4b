"""Table 1: mean embedding benchmark scores per pair, from the evaluation stage's table1.csv."""

from hrsa.logs import to_file

to_file(snakemake.log[0])

from hrsa.report import collect, tables  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
table = tables.table1(collect.read_table1(snakemake.input[0]), pairs)
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
