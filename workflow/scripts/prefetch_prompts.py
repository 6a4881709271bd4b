"""Download one of the authors' instruction files (submit node): checked, sha256 recorded."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.prefetch import prefetch_authors_file  # noqa: E402

prefetch_authors_file(
    snakemake.wildcards.source,
    snakemake.params.url,
    snakemake.output.file,
    snakemake.output.record,
)
