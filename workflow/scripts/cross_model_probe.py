"""Cross-model linear probe of one pair x stage x labelled dataset -> probe.csv."""

from hrsa.logs import limit_threads, to_file

to_file(snakemake.log[0])
limit_threads(snakemake.threads)

from hrsa.metrics import probe_stores, write_probe_csv  # noqa: E402

rows = probe_stores(snakemake.input.base, snakemake.input.reasoning, **snakemake.params.settings)
write_probe_csv(rows, snakemake.output[0])
