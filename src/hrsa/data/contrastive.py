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
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import atomic_path
from ..errors import ConfigError, DataError
from . import remote, synthetic

log = logging.getLogger("hrsa.data.contrastive")

DEFAULT_TEMPLATE = "Instruct: {instruction}\nQuery: "


@dataclass(frozen=True)
class ContrastiveExample:
    """A query with its positive passage and hard negatives, from one source dataset."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    instruction: str = ""
    source: str = ""

    def to_dict(self) -> dict:
        record = asdict(self)
        record["negatives"] = list(self.negatives)
        return record


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
# Reading, normalising, validating, writing
# --------------------------------------------------------------------------------------------


def _text(value, where: str, what: str) -> str:
    """A passage given as a string, a {'text': ...} dict, or a [instruction, text] pair."""
    if isinstance(value, Mapping):
        title, text = value.get("title") or "", value.get("text")
        value = f"{title} {text}".strip() if title and isinstance(text, str) else text
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        value = value[1]  # GritLM-style [instruction, text]
    if not isinstance(value, str):
        raise DataError(f"{where}: {what} must be a string, got {type(value).__name__}")
    return value


def _texts(value, where: str, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        return [_text(value, where, what)]
    if not isinstance(value, list | tuple):
        raise DataError(f"{where}: {what} must be a list of strings, got {type(value).__name__}")
    return [_text(v, where, what) for v in value]


def normalise_record(
    record,
    *,
    where: str,
    source: str | None = None,
    instruction: str | None = None,
    columns: Mapping[str, str | tuple[str, ...]] | None = None,
) -> ContrastiveExample:
    """Turn one raw record (any supported shape) into a :class:`ContrastiveExample`.

    ``source`` and ``instruction`` fill in fields the record lacks (a record's own values win);
    ``columns`` renames hub columns to our fields. ``where`` (``file:line``) prefixes errors.
    """
    if isinstance(record, list | tuple):  # [query, positive, negative...]
        if len(record) < 2:
            raise DataError(f"{where}: a list record needs at least [query, positive]")
        record = {"query": record[0], "positive": record[1], "negatives": list(record[2:])}
    if not isinstance(record, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    rec = dict(record)
    if columns and all(  # rename hub columns (when the record has them; else guess the shape)
        isinstance(columns.get(k), str) and columns[k] in rec for k in ("query", "positive")
    ):
        rec = {
            ours: rec.get(theirs) if isinstance(theirs, str) else [rec.get(t) for t in theirs]
            for ours, theirs in columns.items()
        } | {k: rec[k] for k in ("instruction", "source") if k in rec}
    query_instruction = None
    query = rec.get("query", rec.get("anchor", rec.get("question")))
    if isinstance(query, list) and len(query) == 2 and all(isinstance(v, str) for v in query):
        query_instruction, query = query  # GritLM-style [instruction, query]
    if query is None:
        raise DataError(f"{where}: missing 'query' (keys: {sorted(rec)})")
    query = _text(query, where, "query")
    positive = rec.get("positive", rec.get("pos", rec.get("answer")))
    positives = _texts(positive, where, "positive")
    if not positives:
        raise DataError(f"{where}: missing 'positive' (keys: {sorted(rec)})")
    negatives_value = rec.get("negatives", rec.get("neg", rec.get("negative")))
    negatives = _texts(negatives_value, where, "negatives")
    negatives += [_text(rec[k], where, k) for k in sorted(rec) if k.startswith("negative_")]
    if not query.strip():
        raise DataError(f"{where}: empty query")
    if not positives[0].strip():
        raise DataError(f"{where}: empty positive")
    instr = rec.get("instruction", query_instruction if query_instruction else instruction) or ""
    if not isinstance(instr, str):
        raise DataError(f"{where}: instruction must be a string")
    src = rec.get("source") or source or ""
    return ContrastiveExample(
        query=query,
        positive=positives[0],
        negatives=tuple(n for n in negatives if n.strip()),
        instruction=instr.strip(),
        source=str(src),
    )


def _raw_records(path: Path):
    """Yield (where, record) from a JSONL (optionally .gz) or parquet file."""
    suffixes = path.suffixes
    if ".parquet" in suffixes:
        try:
            import pandas as pd

            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{path}: not a readable parquet file ({exc})") from exc
        for i, row in enumerate(frame.to_dict(orient="records")):
            yield (
                f"{path}:row {i + 1}",
                {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()},
            )
        return
    import gzip

    opener = gzip.open if suffixes and suffixes[-1] == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})"
                ) from exc


def read_examples(
    path: str | os.PathLike,
    *,
    source: str | None = None,
    instruction: str | None = None,
    limit: int | None = None,
) -> list[ContrastiveExample]:
    """Read and validate a JSONL/parquet file of examples. Empty files are an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: training data file does not exist")
    out = []
    for where, record in _raw_records(path):
        out.append(normalise_record(record, where=where, source=source, instruction=instruction))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise DataError(f"{path}: no training examples (the file is empty)")
    missing = next((i for i, ex in enumerate(out) if not ex.source), None)
    if missing is not None:
        raise DataError(f"{path}: example {missing + 1} has no 'source' dataset key")
    return out


def write_examples(examples: Iterable[ContrastiveExample], path: str | os.PathLike) -> int:
    """Write examples as JSONL, atomically. Returns the number written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def group_by_source(examples: Iterable[ContrastiveExample]) -> dict[str, list[ContrastiveExample]]:
    """Examples per source dataset, sources in sorted order, examples in file order."""
    groups: dict[str, list[ContrastiveExample]] = {}
    for ex in examples:
        groups.setdefault(ex.source, []).append(ex)
    return dict(sorted(groups.items()))


def validate_examples(
    examples: list[ContrastiveExample],
    *,
    num_negatives: int,
    where: str = "training data",
) -> None:
    """Check what the trainer needs: non-empty data, and >= 1 negative per example if required."""
    if not examples:
        raise DataError(f"{where}: no training examples")
    if num_negatives > 0:
        for i, ex in enumerate(examples):
            if not ex.negatives:
                raise DataError(
                    f"{where}: example {i + 1} (source {ex.source!r}, query {ex.query[:60]!r}) has no "
                    f"negatives, but the recipe uses {num_negatives} hard negatives per query. Mine "
                    "them first (the mine_negatives rule) or set training.num_negatives: 0."
                )


# --------------------------------------------------------------------------------------------
# Hub and local sources
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
        raise ConfigError(f"unknown training dataset {key!r}; known: {', '.join(REGISTRY)}")
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
    kind = cfg.get("source", "synthetic")
    sources = cfg.get("sources")
    if kind == "synthetic":
        sources = list(sources or SYNTHETIC_SOURCES)
        unknown = [s for s in sources if s not in _GENERATORS]
        if unknown:
            raise ConfigError(
                f"training.data.sources: unknown synthetic source(s) {unknown}; "
                f"known: {SYNTHETIC_SOURCES}"
            )
        return sources
    files = dict(cfg.get("files") or {})
    if kind == "hub":
        sources = list(sources or PAPER_SOURCES)
        unknown = [s for s in sources if s not in REGISTRY and s not in files]
        if unknown:
            raise ConfigError(
                f"training.data.sources: {unknown} are neither Table 7 datasets "
                f"({', '.join(REGISTRY)}) nor given under training.data.files"
            )
        return sources
    if kind == "local":
        sources = list(sources or files)
        missing = [s for s in sources if s not in files]
        if missing:
            raise ConfigError(f"training.data.files has no file for source(s) {missing}")
        if not sources:
            raise ConfigError("training.data.source local needs training.data.files")
        return sources
    raise ConfigError(f"training.data.source must be synthetic, hub or local, got {kind!r}")


def planned_rows(data_cfg: Mapping | None) -> dict[str, int]:
    """Rows per source that a ``training.data`` section asks for, before any data is read.

    ``rows``: ``table7`` (the default for hub/local: each set's count in the paper's Table 7),
    an integer for every source, or a mapping source -> integer (unlisted sources keep their
    default); synthetic sources default to ``n_per_source`` (64). ``scale`` multiplies every
    count: ``max(1, round(rows * scale))``. Raises :class:`ConfigError` naming the key at fault.
    """
    cfg = dict(data_cfg or {})
    kind = cfg.get("source", "synthetic")
    sources = data_sources(cfg)
    if kind != "synthetic" and "n_per_source" in cfg:
        raise ConfigError(
            "training.data.n_per_source applies to source: synthetic only; for hub/local data "
            "use training.data.rows (table7, an integer, or a mapping source -> rows)"
        )
    n_synthetic = cfg.get("n_per_source", 64)
    if kind == "synthetic" and (not isinstance(n_synthetic, int) or n_synthetic < 1):
        raise ConfigError(f"training.data.n_per_source must be an integer >= 1, got {n_synthetic}")
    scale = cfg.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise ConfigError(f"training.data.scale must be a number > 0, got {scale!r}")
    spec = cfg.get("rows")
    if spec is None:
        spec = {} if kind == "synthetic" else "table7"

    def default(source: str) -> int:
        if kind == "synthetic":
            return n_synthetic
        if source not in REGISTRY:
            raise ConfigError(
                f"training.data.rows: source {source!r} is not in Table 7; give its rows as "
                f"training.data.rows.{source}"
            )
        return REGISTRY[source].n_paper

    def count(value, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where} must be an integer >= 1, got {value!r}")
        return value

    if spec == "table7":
        if kind == "synthetic":
            raise ConfigError("training.data.rows: table7 needs source hub or local")
        base = {s: default(s) for s in sources}
    elif isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(sources))
        if unknown:
            raise ConfigError(f"training.data.rows names sources that are not used: {unknown}")
        base = {
            s: count(spec[s], f"training.data.rows.{s}") if s in spec else default(s)
            for s in sources
        }
    else:
        n = count(spec, "training.data.rows (table7, an integer or a mapping)")
        base = dict.fromkeys(sources, n)
    return {s: max(1, round(n * float(scale))) for s, n in base.items()}


# --------------------------------------------------------------------------------------------
# Building the training data of a config
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


def load_training_data(
    data_cfg: Mapping | None, *, mirror: str | os.PathLike | None = None
) -> tuple[list[ContrastiveExample], dict]:
    """The examples a ``training.data`` section describes, and a report of rows per set.

    Each set is sampled (seeded, :func:`sample_indices`) to :func:`planned_rows`. A set with fewer
    rows than requested is a :class:`DataError` naming it, unless ``allow_shortfall: true``, which
    uses all its rows, logs a warning and records the shortfall in the report.
    """
    cfg = dict(data_cfg or {})
    kind = cfg.get("source", "synthetic")
    seed = int(cfg.get("seed", 0))
    files = dict(cfg.get("files") or {})
    allow_shortfall = bool(cfg.get("allow_shortfall", False))
    plan = planned_rows(cfg)
    examples: list[ContrastiveExample] = []
    report: dict = {
        "source": kind,
        "seed": seed,
        "rows": cfg.get("rows", "n_per_source" if kind == "synthetic" else "table7"),
        "scale": float(cfg.get("scale", 1.0)),
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


def report_path(data: str | os.PathLike) -> Path:
    """Where the report of a data file lives: ``<data>.report.json``."""
    return Path(str(data) + ".report.json")


def write_training_data(
    data_cfg: Mapping | None, out: str | os.PathLike, *, mirror: str | os.PathLike | None = None
) -> dict:
    """:func:`load_training_data`, written to ``out`` (JSONL) and ``out``'s ``.report.json``."""
    examples, report = load_training_data(data_cfg, mirror=mirror)
    report["written"] = write_examples(examples, out)
    with atomic_path(report_path(out)) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report


# --------------------------------------------------------------------------------------------
# Offline generator
# --------------------------------------------------------------------------------------------

SYNTHETIC_INSTRUCTIONS = {
    "synthetic_search": "Given a short news search query, retrieve the report that mentions both keywords",
    "synthetic_arithmetic": "Given an arithmetic question, retrieve the worked solution with the correct result",
    "synthetic_paraphrase": "Given a sentence, retrieve a sentence with the same meaning",
    "synthetic_claims": "Given a claim, retrieve the report that supports the claim",
}
SYNTHETIC_SOURCES = list(SYNTHETIC_INSTRUCTIONS)
# Which synthetic sources ship annotated negatives (like NLI or MSMARCO); the other two are
# query-positive pairs (like NQ or SQuAD), so the default run mines for them and keeps the others.
SYNTHETIC_ANNOTATED = {
    "synthetic_search": False,
    "synthetic_arithmetic": True,
    "synthetic_paraphrase": True,
    "synthetic_claims": False,
}


def _filler(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(synthetic.FILLER) for _ in range(n)]


def _sentence_with(rng: random.Random, words: list[str], n_filler: int = 4) -> str:
    body = words + _filler(rng, n_filler)
    rng.shuffle(body)
    return " ".join(body).capitalize() + "."


def _search(rng: random.Random) -> tuple[str, str, list[str]]:
    topic = rng.choice(synthetic.TOPIC_NAMES)
    k1, k2, k3, k4 = rng.sample(synthetic.TOPICS[topic], 4)
    verb = rng.choice(synthetic.VERBS)
    other = rng.choice([t for t in synthetic.TOPIC_NAMES if t != topic])
    query = f"{k1} {k2} news"
    positive = _sentence_with(rng, [k1, k2, verb])
    negatives = [
        _sentence_with(rng, [k1, k3, verb]),  # shares one keyword and the verb
        _sentence_with(rng, [k4, k2, verb]),  # shares the other keyword
        _sentence_with(rng, rng.sample(synthetic.TOPICS[other], 2) + [verb]),
    ]
    return query, positive, negatives


def _arithmetic(rng: random.Random) -> tuple[str, str, list[str]]:
    a, b = rng.randint(2, 60), rng.randint(2, 40)
    op = rng.choice("+-*")
    if op == "*":
        b = rng.randint(2, 9)
    value = a + b if op == "+" else a - b if op == "-" else a * b
    other_op = rng.choice([o for o in "+-*" if o != op])
    other_value = a + b if other_op == "+" else a - b if other_op == "-" else a * b
    query = f"compute {a} {op} {b}"
    off = rng.choice([-2, -1, 1, 3])
    positive = f"{a} {op} {b} = {value}"
    negatives = [
        f"{a} {op} {b} = {value + off}",  # the same problem, a wrong result
        f"{a} {other_op} {b} = {other_value}",  # another operation on the same numbers
        f"{b} {op} {a + 1} = {value + b}",
    ]
    return query, positive, negatives


def _paraphrase(rng: random.Random) -> tuple[str, str, list[str]]:
    topic = rng.choice(synthetic.TOPIC_NAMES)
    content = rng.sample(synthetic.TOPICS[topic], 3) + [rng.choice(synthetic.VERBS)]
    other = rng.choice([t for t in synthetic.TOPIC_NAMES if t != topic])
    query = _sentence_with(rng, list(content), 3)
    positive = _sentence_with(rng, list(content), 5)
    swapped = list(content)
    swapped[rng.randrange(3)] = rng.choice([w for w in synthetic.TOPICS[topic] if w not in content])
    swapped2 = list(content)
    swapped2[:2] = rng.sample(synthetic.TOPICS[other], 2)
    negatives = [
        _sentence_with(rng, swapped, 5),
        _sentence_with(rng, swapped2, 5),
        _sentence_with(
            rng,
            rng.sample([w for w in synthetic.TOPICS[topic] if w not in content], 3) + [content[-1]],
            5,
        ),
    ]
    return query, positive, negatives


def _claims(rng: random.Random) -> tuple[str, str, list[str]]:
    topic = rng.choice(synthetic.TOPIC_NAMES)
    subject, obj = rng.sample(synthetic.TOPICS[topic], 2)
    verb, wrong_verb = rng.sample(synthetic.VERBS, 2)
    query = f"The {subject} {verb} the {obj}."
    positive = f"Report says the {subject} {verb} the {obj} {rng.choice(['today', 'after', 'before'])} {rng.choice(synthetic.FILLER)}."
    negatives = [
        f"Report says the {subject} {wrong_verb} the {obj} {rng.choice(['today', 'after', 'before'])}.",
        f"Report says the {obj} {verb} the {subject} {rng.choice(['today', 'after', 'before'])}.",
        f"Report says the {rng.choice([w for w in synthetic.TOPICS[topic] if w not in (subject, obj)])} {verb} the {obj}.",
    ]
    return query, positive, negatives


_GENERATORS = {
    "synthetic_search": _search,
    "synthetic_arithmetic": _arithmetic,
    "synthetic_paraphrase": _paraphrase,
    "synthetic_claims": _claims,
}


def synthetic_examples(
    n_per_source: int = 64,
    seed: int = 0,
    sources: list[str] | None = None,
    *,
    declared_negatives: bool = False,
) -> list[ContrastiveExample]:
    """Deterministic offline examples: ``n_per_source`` per synthetic source dataset.

    Queries and positives are unique within a source (duplicates would be false in-batch
    negatives); every query has three near-miss negatives that share most of its positive's
    words. With ``declared_negatives`` the sources that :data:`SYNTHETIC_ANNOTATED` declares
    without annotated negatives come as bare query-positive pairs, as the workflow's training data
    has them (they are mined); the default keeps every generated negative (for trainer tests).
    """
    sources = list(sources or SYNTHETIC_SOURCES)
    unknown = [s for s in sources if s not in _GENERATORS]
    if unknown:
        raise ConfigError(f"unknown synthetic source(s) {unknown}; known: {SYNTHETIC_SOURCES}")
    if n_per_source < 1:
        raise ConfigError(f"training.data.n_per_source must be >= 1, got {n_per_source}")
    out = []
    for key in sources:
        rng = random.Random(f"contrastive-{seed}-{key}")
        seen_q, seen_p = set(), set()
        made = 0
        for _ in range(100 * n_per_source):
            query, positive, negatives = _GENERATORS[key](rng)
            if query in seen_q or positive in seen_p or positive in negatives:
                continue
            seen_q.add(query)
            seen_p.add(positive)
            if declared_negatives and not SYNTHETIC_ANNOTATED[key]:
                negatives = []
            out.append(
                ContrastiveExample(
                    query,
                    positive,
                    tuple(dict.fromkeys(negatives)),
                    SYNTHETIC_INSTRUCTIONS[key],
                    key,
                )
            )
            made += 1
            if made == n_per_source:
                break
        else:
            raise ConfigError(f"cannot generate {n_per_source} distinct examples for {key!r}")
    return out


def build_training_data(
    *,
    source: str = "synthetic",
    sources: list[str] | None = None,
    seed: int = 0,
    files: Mapping[str, str] | None = None,
    mirror: str | os.PathLike | None = None,
    **settings,
) -> list[ContrastiveExample]:
    """The examples of a ``training.data`` section given as keywords (``rows``, ``scale``,
    ``allow_shortfall``, ``n_per_source`` as in the config); see :func:`load_training_data`."""
    cfg = {"source": source, "sources": sources, "seed": seed, "files": files} | settings
    return load_training_data({k: v for k, v in cfg.items() if v is not None}, mirror=mirror)[0]


def format_query(query: str, instruction: str, template: str = DEFAULT_TEMPLATE) -> tuple[str, str]:
    """``(prefix, query)``: the instruction prefix (empty without an instruction) and the query."""
    return (template.format(instruction=instruction) if instruction else ""), query
