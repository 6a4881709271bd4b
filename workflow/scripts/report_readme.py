"""results/report/README.md: every table and figure, linked, with what of the paper it reproduces."""

from pathlib import Path

from hrsa.logs import to_file

to_file(snakemake.log[0])

from hrsa.report import collect, readme  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
verdicts = [Path(f) for f in snakemake.input.tables if Path(f).name == "table2.md"]
readme.write_readme(
    snakemake.output[0],
    files=[*snakemake.input.tables, *snakemake.input.figures],
    pairs=pairs,
    skipped=snakemake.params.skipped,
    verdicts_markdown=verdicts[0].read_text(encoding="utf-8") if verdicts else None,
)

# Embedding models this run did not train (models.<key>.embedding_source): say which.
published = {
    model: spec["embedding_source"]
    for model, spec in (snakemake.params.models or {}).items()
    if spec.get("embedding_source")
    and any(model in (p["base"], p["reasoning"]) for p in snakemake.params.pairs.values())
}
if published:
    lines = [
        "",
        "## Published checkpoints",
        "",
        "These models' embedding models (stage `emb`, Table 1) are published checkpoints, not "
        "trained by this run (no training-dynamics snapshots for their pairs):",
        "",
    ]
    for model, source in published.items():
        label = snakemake.params.models[model].get("label", model)
        revision = source.get("revision")
        pin = f" @ {revision}" if revision else ""
        lines.append(f"- {label} (`{model}`): `{source['source']}`{pin}")
    with open(snakemake.output[0], "a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
