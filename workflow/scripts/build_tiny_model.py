"""Build one tiny offline model by its recipe (hrsa.tiny.build_tiny: base, rlvr, task_sft, ...)."""

from hrsa.logs import job_setup

job_setup(snakemake)

from hrsa.tiny import build_tiny  # noqa: E402

build = dict(snakemake.params.build)
build.pop("init", None)
build_tiny(snakemake.output[0], init=snakemake.input.init or None, **build)
