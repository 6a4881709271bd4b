"""Hard-negative mining as the authors' ``datasets/mine_hard_neg.py`` runs it (Appendix A.2).

Policy, source dataset by source dataset (:func:`mine_negatives`):

* **Only what lacks negatives is mined.** An example that already has ``num_negatives``
  annotated negatives (NLI's contradictions, MSMARCO's, the near-misses of two synthetic
  sources) is kept exactly as it is - no embedding, no change. An example with fewer gets only
  the shortfall, mined negatives appended after its annotated ones. A set of query-positive pairs
  (NQ, SQuAD, TriviaQA, Quora, FEVER, two synthetic sources) is thus mined in full.
* **No instruction.** Queries are embedded as plain text (no query prompt), passages too.
* **The search pool is the set's positives**, deduplicated - not its negatives.
* **Positive-aware margin**: a candidate is kept only if its similarity to the query is at most
  ``(1 - relative_margin)`` times the positive's (``relative_margin=0.05``: the paper's 95%
  margin, NV-Retriever's TopK-PercPos); the ``num_negatives`` most similar survivors are taken
  (sampling ``"top"``) from a window of ``range_max`` = min(100, 10% of the set) candidates.
* **Nothing found**: an example keeps what it had; one left with no negative at all is dropped
  (the trainer needs negatives) and counted in the report.

The search itself is ``sentence_transformers.util.mine_hard_negatives``; this module adds the
per-source loop, the policy above, the candidate window, a per-model embedding cache and the
report (``<out>.report.json``: per source, rows kept with annotated negatives, rows mined, rows
topped up, short and dropped, and rows written).

The mining model (``training.mining.model``; the paper's is Qwen/Qwen3-Embedding-0.6B) is a path
or hub id: a sentence-transformers model (``modules.json``) loads as it was published; a plain
backbone (e.g. the tiny base model) is wrapped as bidirectional Transformer + mean Pooling +
Normalize.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

from .config import schema_default
from .data.contrastive import ContrastiveExample, group_by_source
from .errors import DataError, ModelError, config_error

log = logging.getLogger("hrsa.mining")


def _default(key: str):
    """The schema's default of ``training.mining.<key>`` (the schema owns every default)."""
    return schema_default(f"training.mining.{key}")


def load_mining_model(
    source: str,
    *,
    revision: str | None = _default("revision"),
    device: str = schema_default("device"),
    max_length: int = _default("max_length"),
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
            try:
                model.max_seq_length = max_length
            except AttributeError:  # static-embedding models have no sequence limit to set
                pass
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
    num_negatives: int = _default("num_negatives"),
    relative_margin: float = _default("relative_margin"),
    range_max: int = _default("range_max"),
    range_max_fraction: float = _default("range_max_fraction"),
    batch_size: int = _default("batch_size"),
    use_faiss: bool = _default("use_faiss"),
    cache_dir: str | os.PathLike | None = None,
) -> tuple[list[ContrastiveExample], dict]:
    """Give every example ``num_negatives`` negatives by the policy of the module docstring.

    ``model`` is a ``SentenceTransformer`` (see :func:`load_mining_model`); it is not used when
    every example already has enough negatives. Returns the examples (input order within each
    source, dropped ones left out) and a report with per-source counts.
    """
    if num_negatives < 1:
        raise config_error("training.mining.num_negatives", f"must be >= 1, got {num_negatives}")
    if not 0 <= relative_margin < 1:
        raise config_error(
            "training.mining.relative_margin", f"must be in [0, 1), got {relative_margin}"
        )
    if not examples:
        raise DataError("no examples to mine negatives for")
    out: list[ContrastiveExample] = []
    report: dict = {
        "num_negatives": num_negatives,
        "relative_margin": relative_margin,
        "sampling_strategy": "top",
        "query_prompt": None,
        "corpus": "positives of the set (deduplicated)",
        "sources": {},
    }
    for source, group in group_by_source(examples).items():
        need = [ex for ex in group if len(ex.negatives) < num_negatives]
        counts = {
            "examples": len(group),
            "kept_annotated": len(group) - len(need),
            "to_mine": len(need),
            "corpus": 0,
            "range_max": 0,
            "mined_negatives": 0,
            "mined_rows": 0,
            "topped_up": 0,
            "short": 0,
            "dropped": 0,
        }
        found: dict[tuple[str, str], list[str]] = {}
        if need:
            corpus = list(dict.fromkeys(ex.positive for ex in group))
            window = max(num_negatives, min(range_max, math.ceil(range_max_fraction * len(group))))
            window = min(window, len(corpus) - 1)
            counts |= {"corpus": len(corpus), "range_max": max(window, 0)}
            if window >= 1:
                found = _mine(
                    need,
                    corpus,
                    model,
                    num_negatives=num_negatives,
                    relative_margin=relative_margin,
                    range_max=window,
                    batch_size=batch_size,
                    use_faiss=use_faiss,
                    cache_dir=cache_dir,
                )
            else:
                log.warning(
                    "source %r: %d distinct positives, nothing to mine", source, len(corpus)
                )
        for ex in group:
            if len(ex.negatives) >= num_negatives:
                out.append(ex)  # annotated: untouched
                continue
            have = list(ex.negatives)
            extra = [
                n
                for n in found.get((ex.query, ex.positive), [])
                if n != ex.positive and n not in have
            ][: num_negatives - len(have)]
            if extra:
                counts["mined_rows"] += 1
                counts["mined_negatives"] += len(extra)
                counts["topped_up"] += bool(have)
            negatives = have + extra
            if not negatives:
                counts["dropped"] += 1
                continue
            if len(negatives) < num_negatives:
                counts["short"] += 1
            out.append(
                ContrastiveExample(ex.query, ex.positive, tuple(negatives), ex.instruction, source)
            )
        counts["written"] = counts["examples"] - counts["dropped"]
        counts["policy"] = (
            "kept" if not need else "mixed" if any(ex.negatives for ex in group) else "mined"
        )
        report["sources"][source] = counts
        log.info("mining %s: %s", source, counts)
    if not out:
        raise DataError(
            "mining found no negatives for any query; lower relative_margin or raise range_max"
        )
    return out, report


def _mine(
    rows: list[ContrastiveExample],
    corpus: list[str],
    model,
    *,
    num_negatives: int,
    relative_margin: float,
    range_max: int,
    batch_size: int,
    use_faiss: bool,
    cache_dir,
) -> dict[tuple[str, str], list[str]]:
    """Mined negatives per (query, positive): plain queries, the positives as the pool."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    dataset = Dataset.from_dict(
        {"query": [ex.query for ex in rows], "positive": [ex.positive for ex in rows]}
    )
    mined = mine_hard_negatives(
        dataset,
        model,
        anchor_column_name="query",
        positive_column_name="positive",
        corpus=corpus,
        range_max=range_max,
        relative_margin=relative_margin,
        num_negatives=num_negatives,
        sampling_strategy="top",
        query_prompt=None,
        output_format="triplet",
        batch_size=batch_size,
        use_faiss=use_faiss,
        verbose=False,
        cache_folder=str(cache_dir) if cache_dir else None,
    )
    found: dict[tuple[str, str], list[str]] = {}
    for row in mined:
        found.setdefault((row["query"], row["positive"]), []).append(row["negative"])
    return found


def mine_file(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str,
    revision: str | None = _default("revision"),
    cache_dir: str | os.PathLike | None = None,
    device: str = schema_default("device"),
    max_length: int = _default("max_length"),
    **settings,
) -> dict:
    """Read examples from ``data``, mine, write ``out`` (JSONL) and ``out``'s ``.report.json``."""
    import json

    from .data.contrastive import read_examples, write_examples

    examples = read_examples(data)
    num_negatives = int(settings.get("num_negatives", _default("num_negatives")))
    needs_model = any(len(ex.negatives) < num_negatives for ex in examples)
    st_model = (
        load_mining_model(model, revision=revision, device=device, max_length=max_length)
        if needs_model
        else None
    )
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
