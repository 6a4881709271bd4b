"""results/report/README.md: every table and figure, linked, with what of the paper it reproduces."""

from pathlib import Path

from hrsa.logs import to_file

to_file(snakemake.log[0])

from hrsa.report import collect, readme  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
verdicts = [Path(f) for f in snakemake.input.tables if Path(f).name == "table2.md"]
readme.write_readme(
    snakemake.output[0],
    files=[*snakemake.input.tables, *snakemake.input.figures],
    pairs=pairs,
    skipped=snakemake.params.skipped,
    verdicts_markdown=verdicts[0].read_text(encoding="utf-8") if verdicts else None,
)
