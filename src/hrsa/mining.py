"""Positive-aware hard-negative mining (paper Appendix A.2), via sentence-transformers.

For every source dataset separately, :func:`mine_negatives` embeds the queries (with the source's
instruction) and the candidate corpus (the source's positives and any negatives it already has)
with a configured embedding model, and keeps for each query the ``num_negatives`` most similar
candidates whose similarity is at most ``(1 - relative_margin)`` times the positive's
(``relative_margin=0.05``: the paper's 95% margin, NV-Retriever's TopK-PercPos). The search itself is
``sentence_transformers.util.mine_hard_negatives``; this module adds the per-source loop, the
instruction prompts, the authors' candidate window (``range_max`` = min(100, 10% of the source)),
a per-model embedding cache, and a policy for queries with too few valid candidates:

* the mined negatives come first; the example's own negatives (e.g. the generator's near-misses)
  fill up to ``num_negatives``; the trainer repeats them if still short;
* a query with no negative at all is dropped (counted in the report).

The mining model is a path or hub id: a sentence-transformers model (``modules.json``, e.g.
Qwen/Qwen3-Embedding-0.6B) loads as it was published; a plain backbone (e.g. the tiny base model)
is wrapped as bidirectional Transformer + mean Pooling + Normalize.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

from .data.contrastive import DEFAULT_TEMPLATE, ContrastiveExample, group_by_source
from .errors import ConfigError, DataError, ModelError

log = logging.getLogger("hrsa.mining")


def load_mining_model(
    source: str, *, revision: str | None = None, device: str = "auto", max_length: int = 512
):
    """A ``SentenceTransformer`` for mining (see the module docstring for the two cases)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from .models import attention_is_bidirectional, is_local, resolve_device, set_attention

    dev = str(resolve_device(device))
    path = Path(str(source)).expanduser()
    try:
        if (is_local(source) and (path / "modules.json").is_file()) or not is_local(source):
            model = SentenceTransformer(str(source), revision=revision, device=dev)
            model.max_seq_length = max_length
            return model
        if not (path / "config.json").is_file():
            raise ModelError(f"mining model {source!r} does not exist or holds no config.json")
        transformer = Transformer(str(path), max_seq_length=max_length)
    except OSError as exc:
        raise ModelError(
            f"cannot load the mining model {source!r}: {exc}. If this is a hub id, "
            "prefetch it first."
        ) from exc
    set_attention(transformer.auto_model, "bidirectional")
    if not attention_is_bidirectional(transformer.auto_model):
        raise ModelError(f"mining model {source!r} did not become bidirectional")
    dim = transformer.get_embedding_dimension()
    return SentenceTransformer(modules=[transformer, Pooling(dim, "mean"), Normalize()], device=dev)


def _model_cache_key(source: str, revision: str | None) -> str:
    """Distinguishes mining models in the embedding cache (sentence-transformers' own key only
    uses the model card's base model, which is empty for local models)."""
    path = Path(str(source))
    stamp = ""
    for name in ("model.safetensors", "model.safetensors.index.json", "config.json"):
        if (path / name).is_file():
            stat = (path / name).stat()
            stamp = f"{stat.st_size}-{stat.st_mtime_ns}"
            break
    return hashlib.sha256(
        f"{path.resolve() if path.exists() else source}|{revision}|{stamp}".encode()
    ).hexdigest()[:16]


def mine_negatives(
    examples: list[ContrastiveExample],
    model,
    *,
    num_negatives: int = 3,
    relative_margin: float = 0.05,
    range_max: int = 100,
    range_max_fraction: float = 0.1,
    template: str = DEFAULT_TEMPLATE,
    batch_size: int = 32,
    use_faiss: bool = False,
    cache_dir: str | os.PathLike | None = None,
    keep_existing: bool = True,
) -> tuple[list[ContrastiveExample], dict]:
    """Mine ``num_negatives`` hard negatives per query, source by source.

    ``model`` is a ``SentenceTransformer`` (see :func:`load_mining_model`). Returns the examples
    with their negatives replaced, and a report with per-source counts and mean similarities.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    if num_negatives < 1:
        raise ConfigError(f"training.mining.num_negatives must be >= 1, got {num_negatives}")
    if not 0 <= relative_margin < 1:
        raise ConfigError(
            f"training.mining.relative_margin must be in [0, 1), got {relative_margin}"
        )
    if not examples:
        raise DataError("no examples to mine negatives for")
    out: list[ContrastiveExample] = []
    report: dict = {
        "num_negatives": num_negatives,
        "relative_margin": relative_margin,
        "sources": {},
    }
    for source, group in group_by_source(examples).items():
        by_instruction: dict[str, list[ContrastiveExample]] = {}
        for ex in group:
            by_instruction.setdefault(ex.instruction, []).append(ex)
        counts = {
            "examples": len(group),
            "mined_negatives": 0,
            "mined_full": 0,
            "filled_from_existing": 0,
            "short": 0,
            "dropped": 0,
        }
        for instruction, rows in by_instruction.items():
            corpus = list(
                dict.fromkeys(
                    [ex.positive for ex in rows] + [n for ex in rows for n in ex.negatives]
                )
            )
            window = max(num_negatives, min(range_max, math.ceil(range_max_fraction * len(corpus))))
            window = min(window, max(num_negatives, len(corpus) - 1))
            if len(corpus) <= num_negatives:
                raise DataError(
                    f"source {source!r}: {len(corpus)} candidate passages cannot give "
                    f"{num_negatives} negatives per query"
                )
            prompt = template.format(instruction=instruction) if instruction else None
            dataset = Dataset.from_dict(
                {"query": [ex.query for ex in rows], "positive": [ex.positive for ex in rows]}
            )
            mined = mine_hard_negatives(
                dataset,
                model,
                anchor_column_name="query",
                positive_column_name="positive",
                corpus=corpus,
                range_max=window,
                relative_margin=relative_margin,
                num_negatives=num_negatives,
                sampling_strategy="top",
                query_prompt=prompt,
                output_format="triplet",
                batch_size=batch_size,
                use_faiss=use_faiss,
                verbose=False,
                cache_folder=str(cache_dir) if cache_dir else None,
            )
            found: dict[tuple[str, str], list[str]] = {}
            for row in mined:
                found.setdefault((row["query"], row["positive"]), []).append(row["negative"])
            for ex in rows:
                negatives = found.get((ex.query, ex.positive), [])[:num_negatives]
                counts["mined_negatives"] += len(negatives)
                if len(negatives) >= num_negatives:
                    counts["mined_full"] += 1
                elif keep_existing and ex.negatives:
                    extra = [n for n in ex.negatives if n not in negatives and n != ex.positive]
                    if extra:
                        counts["filled_from_existing"] += 1
                    negatives = negatives + extra
                negatives = negatives[:num_negatives]
                if not negatives:
                    counts["dropped"] += 1
                    continue
                if len(negatives) < num_negatives:
                    counts["short"] += 1
                out.append(
                    ContrastiveExample(
                        ex.query, ex.positive, tuple(negatives), ex.instruction, ex.source
                    )
                )
        report["sources"][source] = counts
        log.info("mined %s: %s", source, counts)
    if not out:
        raise DataError(
            "mining found no negatives for any query; lower relative_margin or raise range_max"
        )
    return out, report


def mine_file(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str = "auto",
    max_length: int = 512,
    **settings,
) -> dict:
    """Read examples from ``data``, mine, write ``out`` (JSONL) and ``out``'s ``.report.json``."""
    import json

    from .data.contrastive import read_examples, write_examples

    examples = read_examples(data)
    st_model = load_mining_model(model, revision=revision, device=device, max_length=max_length)
    if cache_dir is not None:
        cache_dir = Path(cache_dir) / _model_cache_key(model, revision)
    mined, report = mine_negatives(examples, st_model, cache_dir=cache_dir, **settings)
    report |= {
        "model": str(model),
        "revision": revision,
        "input": str(data),
        "written": write_examples(mined, out),
    }
    Path(str(out) + ".report.json").write_text(json.dumps(report, indent=2))
    return report
