"""Materialise one probe dataset as JSONL (id, text, label); downloads happen here (a local rule)."""

import os

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)
if snakemake.params.hf_home:
    os.environ["HF_HOME"] = os.path.expanduser(snakemake.params.hf_home)

from hrsa.data.probe import load_probe_dataset, write_jsonl  # noqa: E402

records = load_probe_dataset(
    snakemake.wildcards.dataset,
    dict(snakemake.params.spec),
    mirror=snakemake.params.mirror,
    cache_dir=os.path.expanduser(snakemake.params.cache_dir),
)
write_jsonl(records, snakemake.output[0])
