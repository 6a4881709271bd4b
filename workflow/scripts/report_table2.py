"""Table 2: HRSA verdicts per pair and stage, from the headline numbers and probe accuracies."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, verdicts  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
frame = verdicts.verdicts(
    collect.read_headlines(snakemake.input.summaries),
    pairs,
    dataset=snakemake.params.dataset,
    probes=collect.read_probes(snakemake.input.probes),
    probe_dataset=snakemake.params.probe_dataset,
    thresholds=snakemake.params.thresholds,
)
table = verdicts.table2(frame, pairs, snakemake.params.thresholds)
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
