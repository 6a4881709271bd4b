"""Build one tiny offline model by its recipe (base, reason or sft)."""

from hrsa.logs import limit_threads, to_file

to_file(snakemake.log[0])
limit_threads(snakemake.threads)

from hrsa.tiny import build_tiny  # noqa: E402

build = dict(snakemake.params.build)
build.pop("init", None)
build_tiny(snakemake.output[0], init=snakemake.input.init or None, **build)
