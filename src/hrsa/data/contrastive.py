"""Contrastive training data: one schema, the paper's 11 datasets, and an offline generator.

Every training example is a :class:`ContrastiveExample` - a query, the instruction for its source
dataset, one positive passage, hard negatives and the source dataset's key - stored one JSON object
per line::

    {"query": ..., "instruction": ..., "positive": ..., "negatives": [...], "source": "msmarco"}

Three ways to get examples (``training.data.source`` in the config):

* ``synthetic`` - :func:`synthetic_examples`, deterministic and offline: several "source datasets"
  built from the generated corpus of :mod:`hrsa.data.synthetic`, each query with a positive and
  near-miss negatives (texts that share most of the positive's words but not its meaning), so
  per-dataset batching, mining and the loss are all exercised on a laptop.
* ``hub`` - :data:`REGISTRY`, the 11 datasets of the paper's Table 7 with their Hugging Face
  sources (:func:`load_hub`); needs a prefetched Hub cache or internet.
* ``local`` - a JSONL or parquet file per dataset key (``training.data.files``), which also
  overrides a hub source when both are given. Besides the schema above, local files may use the
  record shapes of the common embedding-training collections (``query``/``pos``/``neg`` lists,
  ``anchor``/``positive``/``negative_1..n``, ``query``/``answer``, ``[query, positive, ...]``).

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
from . import synthetic

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


@dataclass(frozen=True)
class HubSource:
    """Where a dataset lives on the Hugging Face Hub and which columns hold what.

    ``columns`` maps our fields (``query``, ``positive``, ``negatives``) to the dataset's column
    names; a column may hold a string or a list (the first element is the positive; all elements
    of a negatives column are negatives). ``negatives`` may also be a list of column names.
    """

    path: str
    name: str | None = None
    split: str = "train"
    data_files: str | None = None
    columns: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingDataset:
    """One entry of Table 7: key, paper name, size as trained, instruction, hub source."""

    key: str
    name: str
    n_paper: int
    instruction: str
    hub: HubSource
    note: str = ""


# Instructions: the E5-style task descriptions commonly used for these datasets (queries only).
# Hub sources: sentence-transformers' collections where they match the authors' file sizes
# (NQ 100,231 / SQuAD 87,599 / TriviaQA 73,346 / HotpotQA 170,000 rows), otherwise the original
# releases. They are not checked offline: prefetch them, or give a local file per key.
REGISTRY: dict[str, TrainingDataset] = {
    d.key: d
    for d in [
        TrainingDataset(
            "fever",
            "FEVER",
            105_893,
            "Given a claim, retrieve documents that support or refute the claim",
            HubSource(
                "sentence-transformers/embedding-training-data",
                data_files="fever_train.jsonl.gz",
                columns={"query": "query", "positive": "pos", "negatives": "neg"},
            ),
        ),
        TrainingDataset(
            "natural_questions",
            "NaturalQuestions",
            97_912,
            "Given a question, retrieve Wikipedia passages that answer the question",
            HubSource(
                "sentence-transformers/natural-questions",
                columns={"query": "query", "positive": "answer"},
            ),
        ),
        TrainingDataset(
            "nli",
            "NLI",
            277_217,
            "Given a premise, retrieve a hypothesis that is entailed by the premise",
            HubSource(
                "sentence-transformers/all-nli",
                name="triplet",
                columns={"query": "anchor", "positive": "positive", "negatives": "negative"},
            ),
        ),
        TrainingDataset(
            "msmarco",
            "MSMARCO",
            499_184,
            "Given a web search query, retrieve relevant passages that answer the query",
            HubSource(
                "sentence-transformers/msmarco-bm25",
                name="triplet",
                columns={"query": "query", "positive": "positive", "negatives": "negative"},
            ),
        ),
        TrainingDataset(
            "quora",
            "Quora",
            94_443,
            "Given a question, retrieve questions that are semantically equivalent to the given question",
            HubSource(
                "sentence-transformers/quora-duplicates",
                name="pair",
                columns={"query": "anchor", "positive": "positive"},
            ),
        ),
        TrainingDataset(
            "mr_tydi",
            "Mr.Tydi",
            102_796,
            "Given a question, retrieve Wikipedia passages that answer the question",
            HubSource(
                "castorini/mr-tydi",
                name="combined",
                columns={
                    "query": "query",
                    "positive": "positive_passages",
                    "negatives": "negative_passages",
                },
            ),
            note="passages are dicts with a 'text' field",
        ),
        TrainingDataset(
            "dureader",
            "DUReader",
            17_493,
            "Given a Chinese search query, retrieve web passages that answer the question",
            HubSource(
                "Hyukkyu/dureader-retrieval",
                columns={"query": "query", "positive": "pos", "negatives": "neg"},
            ),
            note="source not verified; prefer a local file",
        ),
        TrainingDataset(
            "trivia_qa",
            "TriviaQA",
            65_465,
            "Retrieve Wikipedia passages that answer the question",
            HubSource(
                "sentence-transformers/trivia-qa", columns={"query": "query", "positive": "answer"}
            ),
        ),
        TrainingDataset(
            "hotpot_qa",
            "HotpotQA",
            167_808,
            "Given a multi-hop question, retrieve documents that can help answer the question",
            HubSource(
                "sentence-transformers/hotpotqa",
                name="triplet",
                columns={"query": "anchor", "positive": "positive", "negatives": "negative"},
            ),
        ),
        TrainingDataset(
            "squad",
            "SQuAD",
            84_494,
            "Retrieve Wikipedia passages that answer the question",
            HubSource(
                "sentence-transformers/squad", columns={"query": "question", "positive": "answer"}
            ),
        ),
        TrainingDataset(
            "t2ranking",
            "T2Ranking",
            90_467,
            "Given a Chinese search query, retrieve web passages that answer the question",
            HubSource(
                "THUIR/T2Ranking", columns={"query": "query", "positive": "pos", "negatives": "neg"}
            ),
            note="source not verified; prefer a local file",
        ),
    ]
}
PAPER_SOURCES = list(REGISTRY)


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


def load_hub(
    key: str, *, limit: int | None = None, revision: str | None = None
) -> list[ContrastiveExample]:
    """Load one registry dataset from the Hugging Face Hub (or its local cache)."""
    if key not in REGISTRY:
        raise ConfigError(f"unknown training dataset {key!r}; known: {', '.join(REGISTRY)}")
    entry = REGISTRY[key]
    hub = entry.hub
    from datasets import load_dataset

    try:
        kwargs = {"data_files": hub.data_files} if hub.data_files else {}
        split = hub.split if limit is None else f"{hub.split}[:{limit}]"
        ds = load_dataset(hub.path, hub.name, split=split, revision=revision, **kwargs)
    except Exception as exc:  # ConnectionError, FileNotFoundError, DatasetNotFoundError ...
        raise DataError(
            f"training dataset {key!r}: cannot load {hub.path!r} from the Hub ({exc}). Prefetch it, "
            f"or give a local JSONL/parquet file under training.data.files.{key}."
        ) from exc
    return [
        normalise_record(
            row,
            where=f"{hub.path}:row {i + 1}",
            source=key,
            instruction=entry.instruction,
            columns=hub.columns,
        )
        for i, row in enumerate(ds)
    ]


def load_sources(
    sources: list[str],
    *,
    kind: str = "hub",
    files: Mapping[str, str] | None = None,
    n_per_source: int | None = None,
    seed: int = 0,
) -> list[ContrastiveExample]:
    """Examples for ``sources``: local files where given (``files[key]``), else the Hub.

    ``kind="local"`` requires a file for every source. Instructions come from the registry
    unless a record carries its own.
    """
    files = dict(files or {})
    out: list[ContrastiveExample] = []
    for key in sources:
        entry = REGISTRY.get(key)
        instruction = entry.instruction if entry else None
        if key in files:
            examples = read_examples(files[key], source=key, instruction=instruction)
        elif kind == "local":
            raise ConfigError(f"training.data.files has no file for source {key!r}")
        else:
            examples = load_hub(key)
        if entry is None and not all(ex.instruction for ex in examples):
            log.warning(
                "source %r is not in the registry and some examples have no instruction", key
            )
        if n_per_source:
            rng = random.Random(f"subsample-{seed}-{key}")
            examples = rng.sample(examples, min(n_per_source, len(examples)))
        out.extend(examples)
    return out


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
) -> list[ContrastiveExample]:
    """Deterministic offline examples: ``n_per_source`` per synthetic source dataset.

    Queries and positives are unique within a source (duplicates would be false in-batch
    negatives); every query has three near-miss negatives that share most of its positive's words.
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
    n_per_source: int | None = 64,
    seed: int = 0,
    files: Mapping[str, str] | None = None,
) -> list[ContrastiveExample]:
    """The examples a ``training.data`` config section describes (see the module docstring)."""
    if source == "synthetic":
        return synthetic_examples(n_per_source or 64, seed, sources)
    if source in ("hub", "local"):
        if not sources:
            raise ConfigError("training.data.sources must list the datasets to load")
        return load_sources(
            list(sources), kind=source, files=files, n_per_source=n_per_source, seed=seed
        )
    raise ConfigError(f"training.data.source must be synthetic, hub or local, got {source!r}")


def format_query(query: str, instruction: str, template: str = DEFAULT_TEMPLATE) -> tuple[str, str]:
    """``(prefix, query)``: the instruction prefix (empty without an instruction) and the query."""
    return (template.format(instruction=instruction) if instruction else ""), query
