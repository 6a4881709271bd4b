"""Figure 4: cross-model linear probe accuracy of the main pairs, LLM and embedding model."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, figures, style  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
fig = figures.figure4(
    collect.read_probes(snakemake.input.probes),
    pairs,
    pair_keys=snakemake.params.figure_pairs,
    dataset=snakemake.params.dataset,
    stages=snakemake.params.stages,
)
style.save_figure(fig, snakemake.output.png, snakemake.output.pdf)
