"""Extract every hidden state of one model on one probe dataset into an activation store."""

import logging

from hrsa.logs import limit_threads, to_file
from hrsa.prefetch import configure_hub

to_file(snakemake.log[0])
limit_threads(snakemake.threads)
configure_hub(snakemake.config.get("hub"))

from hrsa.activations import extract  # noqa: E402
from hrsa.models import resolve_embedding_model  # noqa: E402

model, revision = snakemake.params.model, snakemake.params.revision
if snakemake.wildcards.stage == "emb":
    # a trained or published embedding model: its transformer may sit in a sub-directory;
    # the pooling it declares does not matter here (token-level states, no pooling)
    model, revision, fmt = resolve_embedding_model(model, revision)
    logging.getLogger("hrsa.activations").info(
        "embedding model %s (revision %s) declares %s; extraction is token-level: pooling and "
        "prompts are not used",
        snakemake.params.model,
        snakemake.params.revision,
        fmt.describe(),
    )

extract(
    model=model,
    texts=snakemake.input.texts,
    store=snakemake.output[0],
    model_key=snakemake.wildcards.model,
    dataset_key=snakemake.wildcards.dataset,
    stage=snakemake.wildcards.stage,
    revision=revision,
    attention=snakemake.params.attention,
    device=snakemake.params.device,
    **snakemake.params.settings,
)
