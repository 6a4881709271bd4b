"""Download the datasets of one mteb benchmark into the Hugging Face cache (submit node)."""

import json
import os

from hrsa.logs import job_setup

job_setup(snakemake, threads=False, hub=True, compute_job=False)

from hrsa.evaluate.run import prefetch_benchmark  # noqa: E402

tasks = prefetch_benchmark(snakemake.params.benchmark_name, snakemake.params.tasks)
tmp = snakemake.output[0] + ".tmp"
with open(tmp, "w") as fh:
    json.dump({"benchmark": snakemake.params.benchmark_name, "tasks": tasks}, fh, indent=1)
os.replace(tmp, snakemake.output[0])
