"""Where the training sets come from and how many rows of each a run uses.

* :data:`REGISTRY` - the 11 datasets of the paper's Table 7. Each entry declares its source's
  exact schema (field names and types), whether it ships annotated negatives, and whether the
  source is verified against the authors' files. Read only through :mod:`hrsa.data.remote` (the
  Hub, its cache, or the ``data_mirror`` copies in the same schema): :func:`hub_rows`,
  :func:`hub_example`, :func:`load_hub`.
* :func:`data_sources` and :func:`planned_rows` - what a ``training.data`` section asks for,
  from the config alone; :func:`sample_indices` - the seeded choice of rows.
* :func:`report_path` and the per-set origin recorded in the data report.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import schema_default
from ..errors import DataError, config_error
from . import remote
from .contrastive_examples import ContrastiveExample, normalise_record
from .contrastive_synthetic import (
    N_PER_SOURCE,
    SYNTHETIC_ANNOTATED,
    synthetic_sources,
)

# the records of every contrastive-data module keep the logger name they always had
log = logging.getLogger("hrsa.data.contrastive")

#: ``training.data`` defaults: the config schema's (its one owner; hrsa.config.schema_default)
DEFAULT_SOURCE = schema_default("training.data.source")
DEFAULT_SCALE = schema_default("training.data.scale")
DEFAULT_ALLOW_SHORTFALL = schema_default("training.data.allow_shortfall")

# --------------------------------------------------------------------------------------------
# Registry of the paper's training datasets (Table 7)
# --------------------------------------------------------------------------------------------

STRING, STRINGS = "string", "list[string]"


@dataclass(frozen=True)
class HubSource:
    """Where a dataset lives on the Hugging Face Hub, and the exact schema of its records.

    ``schema`` declares the real source's fields in order, name -> type (``"string"`` or
    ``"list[string]"``), and nothing else. ``layout="list"`` means each JSONL line is a JSON array
    (sentence-transformers' ``embedding-training-data`` pairs and triplets): the schema names its
    positions. ``columns`` maps our fields (``query``, ``positive``, ``negatives``) to declared
    field names (a tuple for several negative fields); a list-typed positive contributes its first
    element, a list-typed negatives field all of its elements. ``names`` (several configs) are
    read one after another and concatenated.
    """

    path: str
    name: str | None = None
    split: str = "train"
    data_files: str | None = None
    revision: str | None = None
    layout: str = "columns"
    schema: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    names: tuple[str, ...] = ()

    def configs(self) -> tuple[str | None, ...]:
        return self.names or (self.name,)

    def mapped_fields(self) -> list[str]:
        """Every declared field the loader reads."""
        out: list[str] = []
        for theirs in self.columns.values():
            out += [theirs] if isinstance(theirs, str) else list(theirs)
        return out

    def describe(self) -> str:
        where = self.data_files or ", ".join(str(c) for c in self.configs() if c) or "default"
        rev = f"@{self.revision[:7]}" if self.revision else ""
        return f"{self.path}{rev} ({where})"


@dataclass(frozen=True)
class TrainingDataset:
    """One entry of Table 7: key, paper name, rows as trained, instruction, hub source.

    ``annotated_negatives``: the source ships hard negatives, which are kept as they are; sets
    without them are mined (:mod:`hrsa.mining`). ``verified``: the source was matched to the
    authors' file (name and exact line count) or its schema was read from its card; unverified
    entries are our best public stand-in, explained in ``note``.
    """

    key: str
    name: str
    n_paper: int
    instruction: str
    hub: HubSource
    annotated_negatives: bool
    verified: bool
    note: str = ""
    language: str = "en"


ETD = "sentence-transformers/embedding-training-data"
# the commit of embedding-training-data that still holds fever_train.jsonl.gz (deleted in 1feffe2)
ETD_FEVER_REVISION = "23a3ef863b0ffdaa696be28863b592867164207e"
MR_TYDI_LANGUAGES = ("ar", "bn", "en", "fi", "id", "ja", "ko", "ru", "sw", "te", "th")


def _list_source(data_files: str, fields: Mapping[str, str], **kw) -> HubSource:
    names = list(fields)
    columns = {"query": names[0], "positive": names[1]}
    if len(names) > 2:
        columns["negatives"] = tuple(names[2:]) if len(names) > 3 else names[2]
    return HubSource(
        ETD, data_files=data_files, layout="list", schema=dict(fields), columns=columns, **kw
    )


def _triplet_source(path: str, name: str, n_negatives: int = 1, use: int = 1, **kw) -> HubSource:
    negs = (
        ["negative"] if n_negatives == 1 else [f"negative_{i}" for i in range(1, n_negatives + 1)]
    )
    schema = {"anchor": STRING, "positive": STRING} | {n: STRING for n in negs}
    columns = {"query": "anchor", "positive": "positive", "negatives": tuple(negs[:use])}
    return HubSource(path, name=name, schema=schema, columns=columns, **kw)


# Instructions: the E5-style task descriptions commonly used for these datasets (queries only).
# Sources: see the "Data sources" notes in config/README.md. Six are files of
# sentence-transformers/embedding-training-data whose names and exact line counts equal the
# authors' raw files; the other five are the closest public copies we know (verified=False).
REGISTRY: dict[str, TrainingDataset] = {
    d.key: d
    for d in [
        TrainingDataset(
            "fever",
            "FEVER",
            105_893,
            "Given a claim, retrieve documents that support or refute the claim",
            _list_source(
                "fever_train.jsonl.gz",
                {"claim": STRING, "evidence": STRING},
                revision=ETD_FEVER_REVISION,
            ),
            annotated_negatives=False,
            verified=False,
            note="fever_train.jsonl.gz of embedding-training-data, pinned to the last commit that "
            "has it (139,051 lines; the authors' file has 140,082); record shape assumed to be a "
            "[claim, evidence] pair",
        ),
        TrainingDataset(
            "natural_questions",
            "NaturalQuestions",
            97_912,
            "Given a question, retrieve Wikipedia passages that answer the question",
            _list_source("NQ-train_pairs.jsonl.gz", {"query": STRING, "answer_passage": STRING}),
            annotated_negatives=False,
            verified=True,
            note="100,231 lines = the authors' raw file",
        ),
        TrainingDataset(
            "nli",
            "NLI",
            277_217,
            "Given a premise, retrieve a hypothesis that is entailed by the premise",
            _list_source(
                "AllNLI.jsonl.gz",
                {"anchor": STRING, "entailment": STRING, "contradiction": STRING},
            ),
            annotated_negatives=True,
            verified=True,
            note="277,230 lines = the authors' raw file; triplets (anchor, entailment, contradiction)",
        ),
        TrainingDataset(
            "msmarco",
            "MSMARCO",
            499_184,
            "Given a web search query, retrieve relevant passages that answer the query",
            HubSource(
                ETD,
                data_files="msmarco-triplets.jsonl.gz",
                schema={"query": STRING, "pos": STRINGS, "neg": STRINGS},
                columns={"query": "query", "positive": "pos", "negatives": "neg"},
            ),
            annotated_negatives=True,
            verified=True,
            note="499,184 lines = the authors' raw file = Table 7; query-triplet records "
            "{query, pos: [...], neg: [...]} (the card's format added with this file)",
        ),
        TrainingDataset(
            "quora",
            "Quora",
            94_443,
            "Given a question, retrieve questions that are semantically equivalent to the given question",
            _list_source("quora_duplicates.jsonl.gz", {"question": STRING, "duplicate": STRING}),
            annotated_negatives=False,
            verified=True,
            note="103,663 lines = the authors' raw file; duplicate-question pairs",
        ),
        TrainingDataset(
            "mr_tydi",
            "Mr.Tydi",
            102_796,
            "Given a question, retrieve Wikipedia passages that answer the question",
            HubSource(
                "sentence-transformers/mr-tydi",
                names=tuple(f"{lang}-triplet" for lang in MR_TYDI_LANGUAGES),
                schema={"anchor": STRING, "positive": STRING, "negative": STRING},
                columns={"query": "anchor", "positive": "positive", "negatives": ("negative",)},
            ),
            annotated_negatives=True,
            verified=False,
            note="the 11 per-language `{lang}-triplet` configs of sentence-transformers/mr-tydi, "
            "concatenated (castorini/mr-tydi is a loading script that datasets>=4 refuses); their "
            "total size is not checked against Table 7's 102,796",
            language="multi",
        ),
        TrainingDataset(
            "dureader",
            "DUReader",
            17_493,
            "Given a Chinese search query, retrieve web passages that answer the question",
            _triplet_source("sentence-transformers/dureader", "triplet"),
            annotated_negatives=True,
            verified=False,
            note="sentence-transformers/dureader `triplet` (80,416 rows; the authors' file has "
            "17,519): a seeded sample of it, not the authors' rows",
            language="zh",
        ),
        TrainingDataset(
            "trivia_qa",
            "TriviaQA",
            65_465,
            "Retrieve Wikipedia passages that answer the question",
            _list_source("TriviaQA_pairs.jsonl.gz", {"query": STRING, "answer_passage": STRING}),
            annotated_negatives=False,
            verified=True,
            note="73,346 lines = the authors' raw file",
        ),
        TrainingDataset(
            "hotpot_qa",
            "HotpotQA",
            167_808,
            "Given a multi-hop question, retrieve documents that can help answer the question",
            _triplet_source("sentence-transformers/hotpotqa", "triplet-20", n_negatives=20, use=3),
            annotated_negatives=True,
            verified=False,
            note="sentence-transformers/hotpotqa `triplet-20` (~169k rows; the authors' file has "
            "170,000; the `triplet` config has only 84,516); columns anchor, positive, "
            "negative_1..negative_20 assumed; the first 3 negatives are used",
        ),
        TrainingDataset(
            "squad",
            "SQuAD",
            84_494,
            "Retrieve Wikipedia passages that answer the question",
            _list_source("squad_pairs.jsonl.gz", {"question": STRING, "context": STRING}),
            annotated_negatives=False,
            verified=True,
            note="87,599 lines = the authors' raw file",
        ),
        TrainingDataset(
            "t2ranking",
            "T2Ranking",
            90_467,
            "Given a Chinese search query, retrieve web passages that answer the question",
            _triplet_source("sentence-transformers/t2ranking", "triplet"),
            annotated_negatives=True,
            verified=False,
            note="sentence-transformers/t2ranking `triplet` (~90.5k rows, close to Table 7's "
            "90,467; THUIR/T2Ranking is a loading script without query/pos/neg records); columns "
            "anchor, positive, negative assumed",
            language="zh",
        ),
    ]
}
PAPER_SOURCES = list(REGISTRY)
TABLE7_TOTAL = 1_603_172


# --------------------------------------------------------------------------------------------
# Hub sources (local files are read by contrastive_examples.read_examples)
# --------------------------------------------------------------------------------------------


def _read_list_file(path: Path, where: str) -> list:
    """The JSON arrays of a (gzipped) JSONL file, one per line."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from exc
    except OSError as exc:
        raise DataError(f"{where}: cannot read {path} ({exc})") from exc
    return out


def hub_rows(key: str, *, mirror: str | os.PathLike | None = None):
    """The raw records of registry dataset ``key``, in the source's own schema.

    A ``datasets.Dataset`` (column layout; several configs concatenated) or a list of JSON
    arrays (list layout). Read through :mod:`hrsa.data.remote`: from the Hub (or its cache) or,
    with ``mirror``, from local copies in the same schema.
    """
    if key not in REGISTRY:
        raise config_error(
            "training.data.sources",
            f"unknown training dataset {key!r}; known: {', '.join(REGISTRY)}",
        )
    hub = REGISTRY[key].hub
    what = f"training dataset {key!r}"
    if hub.layout == "list":
        # files of JSON arrays: datasets' JSON builder wants one object per line
        path = remote.hub_file(
            hub.path, hub.data_files, revision=hub.revision, mirror=mirror, what=what
        )
        return _read_list_file(path, f"{what} ({hub.path})")
    parts = []
    for name in hub.configs():
        ds = remote.load_hub_dataset(
            hub.path,
            name=name,
            split=hub.split,
            data_files=hub.data_files,
            revision=hub.revision,
            mirror=mirror,
            what=what,
        )
        missing = [c for c in hub.mapped_fields() if c not in ds.column_names]
        if missing:
            raise DataError(
                f"{what}: {hub.path} (config {name!r}) has no field(s) {missing}; its columns "
                f"are {ds.column_names}, the registry declares {list(hub.schema)}"
            )
        undeclared = sorted(set(ds.column_names) - set(hub.schema))
        if undeclared:
            log.warning("%s: columns %s are not in the declared schema", what, undeclared)
        parts.append(ds)
    if len(parts) == 1:
        return parts[0]
    from datasets import concatenate_datasets

    return concatenate_datasets(parts)


def hub_example(key: str, record, *, where: str) -> ContrastiveExample:
    """One raw record of registry dataset ``key`` as a :class:`ContrastiveExample`.

    Reads exactly the fields the registry maps (a missing one is a :class:`DataError` naming it),
    so a registry entry cannot silently depend on a field the real source lacks.
    """
    entry = REGISTRY[key]
    hub = entry.hub
    fields = list(hub.schema)
    if hub.layout == "list":
        if not isinstance(record, list) or len(record) != len(fields):
            raise DataError(
                f"{where}: expected a JSON array of {len(fields)} ({', '.join(fields)}), got "
                f"{record!r:.80}"
            )
        record = dict(zip(fields, record, strict=True))
    if not isinstance(record, Mapping):
        raise DataError(f"{where}: expected a record, got {type(record).__name__}")
    missing = [c for c in hub.mapped_fields() if c not in record]
    if missing:
        raise DataError(f"{where}: record has no field(s) {missing} (keys: {sorted(record)})")
    rec = {
        ours: record[theirs] if isinstance(theirs, str) else [record[t] for t in theirs]
        for ours, theirs in hub.columns.items()
    }
    if isinstance(hub.columns.get("negatives"), tuple):  # several fields, each a text or list
        flat = []
        for value in rec["negatives"]:
            flat += value if isinstance(value, list) else [value]
        rec["negatives"] = [v for v in flat if v is not None]
    return normalise_record(rec, where=where, source=key, instruction=entry.instruction)


def load_hub(
    key: str, *, limit: int | None = None, mirror: str | os.PathLike | None = None
) -> list[ContrastiveExample]:
    """Every record (or the first ``limit``) of registry dataset ``key`` as examples."""
    rows = hub_rows(key, mirror=mirror)
    n = len(rows) if limit is None else min(limit, len(rows))
    hub = REGISTRY[key].hub
    return [hub_example(key, rows[i], where=f"{hub.describe()}:row {i + 1}") for i in range(n)]


def sample_indices(n_available: int, n: int, *, seed: int, key: str) -> list[int]:
    """A seeded, deterministic choice of ``min(n, n_available)`` row indices (sorted).

    The prefix of a permutation seeded by ``(seed, key)``: the same config gives the same rows on
    every machine, and a larger ``n`` keeps the rows of a smaller one.
    """
    import zlib

    import numpy as np

    if n >= n_available:
        return list(range(n_available))
    rng = np.random.default_rng([int(seed), zlib.crc32(key.encode())])
    return sorted(int(i) for i in rng.permutation(n_available)[:n])


# --------------------------------------------------------------------------------------------
# What a training.data config asks for (pure: usable at plan time without any data)
# --------------------------------------------------------------------------------------------


def data_sources(data_cfg: Mapping | None) -> list[str]:
    """The source keys of a ``training.data`` section (defaults: all of the kind's sources)."""
    cfg = dict(data_cfg or {})
    kind = cfg.get("source", DEFAULT_SOURCE)
    sources = cfg.get("sources")
    if kind == "synthetic":
        return synthetic_sources(sources)
    files = dict(cfg.get("files") or {})
    if kind == "hub":
        sources = list(sources or PAPER_SOURCES)
        unknown = [s for s in sources if s not in REGISTRY and s not in files]
        if unknown:
            raise config_error(
                "training.data.sources",
                f"{unknown} are neither Table 7 datasets ({', '.join(REGISTRY)}) "
                "nor given under training.data.files",
            )
        return sources
    if kind == "local":
        sources = list(sources or files)
        missing = [s for s in sources if s not in files]
        if missing:
            raise config_error("training.data.files", f"no file for source(s) {missing}")
        if not sources:
            raise config_error("training.data.source", "local needs training.data.files")
        return sources
    raise config_error("training.data.source", f"must be synthetic, hub or local, got {kind!r}")


def planned_rows(data_cfg: Mapping | None) -> dict[str, int]:
    """Rows per source that a ``training.data`` section asks for, before any data is read.

    ``rows``: ``table7`` (the default for hub/local: each set's count in the paper's Table 7),
    an integer for every source, or a mapping source -> integer (unlisted sources keep their
    default); synthetic sources default to ``n_per_source`` (64). ``scale`` multiplies every
    count: ``max(1, round(rows * scale))``. Raises :class:`ConfigError` naming the key at fault.
    """
    cfg = dict(data_cfg or {})
    kind = cfg.get("source", DEFAULT_SOURCE)
    sources = data_sources(cfg)
    if kind != "synthetic" and "n_per_source" in cfg:
        raise config_error(
            "training.data.n_per_source",
            "applies to source: synthetic only; for hub/local data use training.data.rows "
            "(table7, an integer, or a mapping source -> rows)",
        )
    n_synthetic = cfg.get("n_per_source", N_PER_SOURCE)
    if kind == "synthetic" and (not isinstance(n_synthetic, int) or n_synthetic < 1):
        raise config_error(
            "training.data.n_per_source", f"must be an integer >= 1, got {n_synthetic}"
        )
    scale = cfg.get("scale", DEFAULT_SCALE)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise config_error("training.data.scale", f"must be a number > 0, got {scale!r}")
    spec = cfg.get("rows")
    if spec is None:
        spec = {} if kind == "synthetic" else "table7"

    def default(source: str) -> int:
        if kind == "synthetic":
            return n_synthetic
        if source not in REGISTRY:
            raise config_error(
                "training.data.rows",
                f"source {source!r} is not in Table 7; give its rows as "
                f"training.data.rows.{source}",
            )
        return REGISTRY[source].n_paper

    def count(value, key: str, what: str = "an integer >= 1") -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise config_error(key, f"must be {what}, got {value!r}")
        return value

    if spec == "table7":
        if kind == "synthetic":
            raise config_error("training.data.rows", "table7 needs source hub or local")
        base = {s: default(s) for s in sources}
    elif isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(sources))
        if unknown:
            raise config_error("training.data.rows", f"names sources that are not used: {unknown}")
        base = {
            s: count(spec[s], f"training.data.rows.{s}") if s in spec else default(s)
            for s in sources
        }
    else:
        n = count(spec, "training.data.rows", "table7, an integer >= 1 or a mapping")
        base = dict.fromkeys(sources, n)
    return {s: max(1, round(n * float(scale))) for s, n in base.items()}


# --------------------------------------------------------------------------------------------
# The data report: where each set comes from, where the report is written
# --------------------------------------------------------------------------------------------


def _source_info(key: str, kind: str, files: Mapping[str, str]) -> dict:
    entry = REGISTRY.get(key)
    info: dict = {
        "name": entry.name if entry else key,
        "n_paper": entry.n_paper if entry else None,
    }
    if kind == "synthetic":
        return info | {
            "origin": "synthetic",
            "verified": True,
            "annotated_negatives": SYNTHETIC_ANNOTATED[key],
        }
    if key in files:
        return info | {
            "origin": str(files[key]),
            "verified": None,
            "annotated_negatives": entry.annotated_negatives if entry else None,
        }
    hub = entry.hub
    return info | {
        "origin": hub.describe(),
        "repo": hub.path,
        "configs": [c for c in hub.configs() if c],
        "data_files": hub.data_files,
        "revision": hub.revision,
        "verified": entry.verified,
        "annotated_negatives": entry.annotated_negatives,
        "note": entry.note,
    }


def report_path(data: str | os.PathLike) -> Path:
    """Where the report of a data file lives: ``<data>.report.json``."""
    return Path(str(data) + ".report.json")
