"""Table 1: mean embedding benchmark scores per pair, from the evaluation stage's table1.csv.

A pair with a published checkpoint (config key models.<key>.embedding_source; the CSV's
base_embedding / reasoning_embedding say which member) is marked with † and listed below.
"""

from hrsa.logs import to_file

to_file(snakemake.log[0])

from hrsa.evaluate.aggregate import PUBLISHED, PUBLISHED_MARK  # noqa: E402
from hrsa.report import collect, tables  # noqa: E402

pairs = collect.pairs_from_config(snakemake.params.pairs, snakemake.params.models)
frame = collect.read_table1(snakemake.input[0])
table = tables.table1(frame, pairs)
notes = []
for key in dict.fromkeys(frame["pair"]):
    rows = frame[frame["pair"] == key].iloc[0]
    info = collect.pair_info(pairs, key)
    names = [
        (label, getattr(info, role))
        for role, label in zip(("base", "reasoning"), info.model_labels("emb"), strict=True)
        if rows[f"{role}_embedding"] == PUBLISHED
    ]
    if not names:
        continue
    short = info.short_name("emb")
    table.markdown = table.markdown.replace(f"| {short} |", f"| {short} {PUBLISHED_MARK} |", 1)
    sources = [
        str(
            (snakemake.params.models.get(model) or {})
            .get("embedding_source", {})
            .get("source", "?")
        )
        for _, model in names
    ]
    notes.append(
        f"{short}: "
        + ", ".join(f"{label} = `{src}`" for (label, _), src in zip(names, sources, strict=True))
    )
if notes:
    table.markdown += (
        f"\n{PUBLISHED_MARK} published checkpoint (not trained by this run; evaluated once, "
        "its score stands for every seed): " + "; ".join(notes) + ".\n"
    )
table.write(csv=snakemake.output.csv, markdown=snakemake.output.md)
