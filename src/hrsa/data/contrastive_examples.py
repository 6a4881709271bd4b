"""The contrastive training example and its file format (see :mod:`hrsa.data.contrastive`).

:class:`ContrastiveExample` is the one schema every training set is turned into; this module
normalises the record shapes a file may use (:func:`normalise_record`), reads and writes JSONL or
parquet files of examples, groups them by source dataset and checks what the trainer needs.

Readers raise :class:`~hrsa.errors.DataError` naming the file and line of the first bad record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ..atomic import atomic_path
from ..config import schema_default
from ..errors import DataError

#: the query template: the schema's ``training.instruction_template`` (its one owner)
DEFAULT_TEMPLATE = schema_default("training.instruction_template")


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


def format_query(query: str, instruction: str, template: str = DEFAULT_TEMPLATE) -> tuple[str, str]:
    """``(prefix, query)``: the instruction prefix (empty without an instruction) and the query."""
    return (template.format(instruction=instruction) if instruction else ""), query
