"""Check that the two stores of a pair hold identical token ids row by row, and that every file
read and every layer file's size match its manifest (hrsa.store.pair_check)."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.store import pair_check  # noqa: E402

pair_check(snakemake.input.base, snakemake.input.reasoning, snakemake.output[0])
