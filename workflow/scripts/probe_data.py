"""Materialise one probe dataset as JSONL (id, text, label)."""

import os

from hrsa.logs import to_file

to_file(snakemake.log[0])
if snakemake.params.cache_dir:
    os.environ["HF_HOME"] = os.path.expanduser(snakemake.params.cache_dir)

from hrsa.data.probe import load_probe_dataset, write_jsonl  # noqa: E402

records = load_probe_dataset(snakemake.wildcards.dataset, dict(snakemake.params.spec))
write_jsonl(records, snakemake.output[0])
