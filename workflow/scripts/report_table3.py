"""Table 3: H_inv of O* on the final hidden state, LLMs and embedding models, main dataset."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, tables  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
headlines = collect.read_headlines(snakemake.input.summaries)
table = tables.table3(headlines, pairs, dataset=snakemake.params.dataset)
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
