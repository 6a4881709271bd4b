"""results/report/README.md: every table and figure, linked, with what of the paper it reproduces,
the verdicts (Table 2) and the published embedding checkpoints (hrsa.report.readme)."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, readme  # noqa: E402

readme.write_readme(
    snakemake.output[0],
    files=[*snakemake.input.tables, *snakemake.input.figures],
    pairs=collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models),
    models=snakemake.params.models,
    skipped=snakemake.params.skipped,
)
