"""The problems of one CoT source (a Hub dataset or a local file); downloads happen here."""

import os

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)
if snakemake.params.hf_home:
    os.environ["HF_HOME"] = os.path.expanduser(snakemake.params.hf_home)

from hrsa.cot.sources import write_problems  # noqa: E402

write_problems(
    snakemake.wildcards.cot_source,
    dict(snakemake.params.spec),
    snakemake.output[0],
    mirror=snakemake.params.mirror,
)
