"""Contrastive training examples (synthetic, hub or local files) -> one JSONL file."""

from hrsa.logs import to_file

to_file(snakemake.log[0])

from hrsa.data.contrastive import build_training_data, write_examples  # noqa: E402

data = dict(snakemake.params.data)
examples = build_training_data(
    source=data.get("source", "synthetic"),
    sources=data.get("sources"),
    n_per_source=data.get("n_per_source", 64),
    seed=int(data.get("seed", 0)),
    files=data.get("files"),
)
write_examples(examples, snakemake.output[0])
