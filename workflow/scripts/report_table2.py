"""Table 2: HRSA verdicts per pair and stage, from the headline numbers and probe accuracies; under
it, the RLVR family against the SFT family (hrsa.report.contrast), also as its own CSV."""

from dataclasses import replace

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.report import collect, contrast, verdicts  # noqa: E402
from hrsa.report.tables import Table  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
thresholds = snakemake.params.thresholds
headlines = collect.read_headlines(snakemake.input.summaries)
frame = verdicts.verdicts(
    headlines,
    pairs,
    dataset=snakemake.params.dataset,
    probes=collect.read_probes(snakemake.input.probes),
    probe_dataset=snakemake.params.probe_dataset,
    thresholds=thresholds,
)
families = contrast.rlvr_vs_sft(headlines, pairs, snakemake.params.dataset, thresholds)
table = verdicts.table2(frame, pairs, thresholds)
table = replace(
    table, markdown=table.markdown + "\n" + contrast.contrast_markdown(families, thresholds)
)
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
Table("RLVR vs SFT", families, "").write(csv=snakemake.output.contrast)
