"""Download one hub model revision into the Hugging Face cache (run on a node with internet)."""

import os

from hrsa.logs import to_file

to_file(snakemake.log[0])
if snakemake.params.cache_dir:
    os.environ["HF_HOME"] = os.path.expanduser(snakemake.params.cache_dir)

from hrsa.prefetch import prefetch_model  # noqa: E402

prefetch_model(snakemake.params.source, snakemake.params.revision, snakemake.output[0])
