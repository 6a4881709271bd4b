"""Table 7: rows of each training set used in this run next to the paper's count."""

import json

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import tables  # noqa: E402


def read(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


mining = getattr(snakemake.input, "mining", None)  # absent when mining is off
table = tables.table7(read(snakemake.input.data), read(mining) if mining else None)
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
