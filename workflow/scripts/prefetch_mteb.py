"""Download the datasets of one mteb benchmark into the Hugging Face cache (submit node)."""

import json
import os

from hrsa.logs import to_file
from hrsa.prefetch import configure_hub

to_file(snakemake.log[0])
configure_hub(snakemake.config.get("hub"), compute_job=False)

from hrsa.evaluate.run import prefetch_benchmark  # noqa: E402

tasks = prefetch_benchmark(snakemake.params.benchmark_name, snakemake.params.tasks)
tmp = snakemake.output[0] + ".tmp"
with open(tmp, "w") as fh:
    json.dump({"benchmark": snakemake.params.benchmark_name, "tasks": tasks}, fh, indent=1)
os.replace(tmp, snakemake.output[0])
