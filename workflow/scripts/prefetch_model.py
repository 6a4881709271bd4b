"""Download one hub model revision into the Hugging Face cache (run on a node with internet)."""

import os

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)
if snakemake.params.cache_dir:
    os.environ["HF_HOME"] = os.path.expanduser(snakemake.params.cache_dir)

from hrsa.prefetch import prefetch_embedding_model, prefetch_model  # noqa: E402

fetch = prefetch_embedding_model if snakemake.params.get("embedding") else prefetch_model
fetch(snakemake.params.source, snakemake.params.revision, snakemake.output[0])
