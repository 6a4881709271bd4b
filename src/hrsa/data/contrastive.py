"""Contrastive training data: one schema, the paper's 11 datasets, and an offline generator.

Every training example is a :class:`ContrastiveExample` - a query, the instruction for its source
dataset, one positive passage, hard negatives and the source dataset's key - stored one JSON object
per line::

    {"query": ..., "instruction": ..., "positive": ..., "negatives": [...], "source": "msmarco"}

Three ways to get examples (``training.data.source`` in the config):

* ``synthetic`` - :func:`synthetic_examples`, deterministic and offline: four "source datasets"
  built from the generated corpus of :mod:`hrsa.data.synthetic`. Two ship near-miss negatives
  (texts that share most of the positive's words but not its meaning), two are bare
  query-positive pairs (:data:`SYNTHETIC_ANNOTATED`), so both branches of mining run on a laptop.
* ``hub`` - :data:`REGISTRY`, the 11 datasets of the paper's Table 7. Each entry declares its
  source's exact schema (field names and types), whether it ships annotated negatives, and
  whether the source is verified against the authors' files. Read only through
  :mod:`hrsa.data.remote` (the Hub, its cache, or the ``data_mirror`` copies in the same schema).
* ``local`` - a JSONL or parquet file per dataset key (``training.data.files``), which also
  overrides a hub source when both are given. Besides the schema above, local files may use the
  record shapes of the common embedding-training collections (``query``/``pos``/``neg`` lists,
  ``anchor``/``positive``/``negative_1..n``, ``query``/``answer``, ``[query, positive, ...]``).

Sizes: :func:`planned_rows` says, from the config alone, how many rows of each set a run uses
(hub/local: the paper's Table 7 counts by default, total 1,603,172; ``rows`` and ``scale`` change
that). :func:`load_training_data` samples each set to exactly that many rows (a seeded permutation
prefix) and stops, naming the set, when a set is smaller (unless ``allow_shortfall``).

Readers raise :class:`~hrsa.errors.DataError` naming the file and line of the first bad record.

Where it lives: the example schema and its files in :mod:`hrsa.data.contrastive_examples`; the
registry, hub readers and row planning in :mod:`hrsa.data.contrastive_sources`; the offline
generator in :mod:`hrsa.data.contrastive_synthetic`. This module builds the training data of a
config and re-exports the names of all three.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ..atomic import atomic_path
from ..errors import DataError
from .contrastive_examples import (
    DEFAULT_TEMPLATE,
    ContrastiveExample,
    format_query,
    group_by_source,
    normalise_record,
    read_examples,
    validate_examples,
    write_examples,
)
from .contrastive_sources import (
    DEFAULT_ALLOW_SHORTFALL,
    DEFAULT_SCALE,
    DEFAULT_SOURCE,
    ETD,
    ETD_FEVER_REVISION,
    MR_TYDI_LANGUAGES,
    PAPER_SOURCES,
    REGISTRY,
    STRING,
    STRINGS,
    TABLE7_TOTAL,
    HubSource,
    TrainingDataset,
    _source_info,
    data_sources,
    hub_example,
    hub_rows,
    load_hub,
    planned_rows,
    report_path,
    sample_indices,
)
from .contrastive_synthetic import (
    DEFAULT_SEED,
    SYNTHETIC_ANNOTATED,
    SYNTHETIC_INSTRUCTIONS,
    SYNTHETIC_SOURCES,
    synthetic_examples,
)

# the generators themselves, which hrsa.data.training_fixtures reuses for its real-schema records
from .contrastive_synthetic import _arithmetic as _arithmetic
from .contrastive_synthetic import _claims as _claims
from .contrastive_synthetic import _paraphrase as _paraphrase
from .contrastive_synthetic import _search as _search
from .contrastive_synthetic import _sentence_with as _sentence_with

__all__ = [
    "ContrastiveExample",
    "DEFAULT_ALLOW_SHORTFALL",
    "DEFAULT_SCALE",
    "DEFAULT_SEED",
    "DEFAULT_SOURCE",
    "DEFAULT_TEMPLATE",
    "ETD",
    "ETD_FEVER_REVISION",
    "HubSource",
    "MR_TYDI_LANGUAGES",
    "PAPER_SOURCES",
    "REGISTRY",
    "STRING",
    "STRINGS",
    "SYNTHETIC_ANNOTATED",
    "SYNTHETIC_INSTRUCTIONS",
    "SYNTHETIC_SOURCES",
    "TABLE7_TOTAL",
    "TrainingDataset",
    "build_training_data",
    "data_sources",
    "format_query",
    "group_by_source",
    "hub_example",
    "hub_rows",
    "load_hub",
    "load_training_data",
    "normalise_record",
    "planned_rows",
    "read_examples",
    "report_path",
    "sample_indices",
    "synthetic_examples",
    "validate_examples",
    "write_examples",
    "write_training_data",
]

log = logging.getLogger("hrsa.data.contrastive")


# --------------------------------------------------------------------------------------------
# Building the training data of a config
# --------------------------------------------------------------------------------------------


def load_training_data(
    data_cfg: Mapping | None, *, mirror: str | os.PathLike | None = None
) -> tuple[list[ContrastiveExample], dict]:
    """The examples a ``training.data`` section describes, and a report of rows per set.

    Each set is sampled (seeded, :func:`sample_indices`) to :func:`planned_rows`. A set with fewer
    rows than requested is a :class:`DataError` naming it, unless ``allow_shortfall: true``, which
    uses all its rows, logs a warning and records the shortfall in the report.
    """
    cfg = dict(data_cfg or {})
    kind = cfg.get("source", DEFAULT_SOURCE)
    seed = int(cfg.get("seed", DEFAULT_SEED))
    files = dict(cfg.get("files") or {})
    allow_shortfall = bool(cfg.get("allow_shortfall", DEFAULT_ALLOW_SHORTFALL))
    plan = planned_rows(cfg)
    examples: list[ContrastiveExample] = []
    report: dict = {
        "source": kind,
        "seed": seed,
        "rows": cfg.get("rows", "n_per_source" if kind == "synthetic" else "table7"),
        "scale": float(cfg.get("scale", DEFAULT_SCALE)),
        "allow_shortfall": allow_shortfall,
        "mirror": str(mirror) if mirror else None,
        "sets": {},
    }
    for key, requested in plan.items():
        info = _source_info(key, kind, files)
        if kind == "synthetic":
            chosen = synthetic_examples(requested, seed, [key], declared_negatives=True)
            available = len(chosen)
        elif key in files:
            entry = REGISTRY.get(key)
            rows = read_examples(
                files[key], source=key, instruction=entry.instruction if entry else None
            )
            available = len(rows)
            chosen = [rows[i] for i in sample_indices(available, requested, seed=seed, key=key)]
        else:
            rows = hub_rows(key, mirror=mirror)
            available = len(rows)
            idx = sample_indices(available, requested, seed=seed, key=key)
            origin = REGISTRY[key].hub.describe()
            if hasattr(rows, "select"):  # a datasets.Dataset: only the mapped columns
                rows = rows.select_columns(REGISTRY[key].hub.mapped_fields()).select(idx)
                chosen = [
                    hub_example(key, r, where=f"{origin}:row {i + 1}")
                    for i, r in zip(idx, rows, strict=True)
                ]
            else:
                chosen = [hub_example(key, rows[i], where=f"{origin}:row {i + 1}") for i in idx]
        shortfall = max(0, requested - available)
        if shortfall:
            message = (
                f"training dataset {key!r} ({info['origin']}) has {available} rows, fewer than "
                f"the {requested} requested (training.data.rows / scale)"
            )
            if not allow_shortfall:
                raise DataError(
                    message + "; lower its rows, or set training.data.allow_shortfall: true"
                )
            log.warning("%s; using all %d (allow_shortfall)", message, available)
        examples.extend(chosen)
        report["sets"][key] = info | {
            "requested": requested,
            "available": available,
            "used": len(chosen),
            "shortfall": shortfall,
            "with_negatives": sum(1 for ex in chosen if ex.negatives),
        }
        log.info(
            "training data %s: %d of %d rows (requested %d)", key, len(chosen), available, requested
        )
    report["total_requested"] = sum(plan.values())
    report["total_used"] = len(examples)
    return examples, report


def write_training_data(
    data_cfg: Mapping | None, out: str | os.PathLike, *, mirror: str | os.PathLike | None = None
) -> dict:
    """:func:`load_training_data`, written to ``out`` (JSONL) and ``out``'s ``.report.json``."""
    examples, report = load_training_data(data_cfg, mirror=mirror)
    report["written"] = write_examples(examples, out)
    with atomic_path(report_path(out)) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report


def build_training_data(
    *,
    source: str = DEFAULT_SOURCE,
    sources: list[str] | None = None,
    seed: int = DEFAULT_SEED,
    files: Mapping[str, str] | None = None,
    mirror: str | os.PathLike | None = None,
    **settings,
) -> list[ContrastiveExample]:
    """The examples of a ``training.data`` section given as keywords (``rows``, ``scale``,
    ``allow_shortfall``, ``n_per_source`` as in the config); see :func:`load_training_data`."""
    cfg = {"source": source, "sources": sources, "seed": seed, "files": files} | settings
    return load_training_data({k: v for k, v in cfg.items() if v is not None}, mirror=mirror)[0]
