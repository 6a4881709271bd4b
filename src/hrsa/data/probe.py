"""Probe datasets for HRSA: the paper's three sources, local files and offline generators.

A dataset spec (``config["probe_datasets"][key]``) is one of

* ``{generator: arithmetic_traces|multiple_choice|topic_sentences, n: 120, seed: 0}`` - offline;
* ``{local: path/to/file.jsonl|.parquet, text_field: text, label_field: label}`` - a local file;
* ``{registry: cot|mmlu_pro|ag_news}`` - one of the paper's sources in :data:`REGISTRY`.

Every registry source *declares the schema of the real dataset* (field names and types, as the
published copy has them). Fields a spec names - ``text_field``, ``label_field``, ``id_field``,
``filters``, ``stratify.field`` - are checked against that declaration by :func:`check_spec`,
which needs no data, so a wrong field fails when the workflow is planned, not in a job. Rows are
then read strictly: a declared field that a row lacks is an error, never a silent ``None``.

Registry sources are read only through :mod:`hrsa.data.remote`, so ``data_mirror`` points them at
local copies in the same schema (the rehearsal of ``config/paper.yaml`` does that) with no other
change to the code path.

Common keys: ``filters`` (field -> required value, or a list of allowed values), ``stratify``
(``{field, per_group, seed}``: a seeded sample of exactly ``per_group`` rows of every value of
``field``), ``limit`` (the first N rows after filtering and stratifying). The CoT source also takes
``tiers`` (which of ``easy``/``moderate``/``hard`` to read; default ``[hard]``) and ``traces``
(``published``, the default: the authors' files; ``generated``: this workflow's own, written by
:mod:`hrsa.cot` and read by the same code, see :data:`GENERATED_COT_FIELDS`).

The text is ONE field of the row, verbatim - no template, no chat template - as the authors'
extraction code builds it. The output is JSONL with ``id``, ``text`` and ``label`` (None when the
source has no label).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path
from ..config import schema_default
from ..errors import DataError, config_error
from . import remote, synthetic

log = logging.getLogger("hrsa.data.probe")

#: the seed of a stratified sample: the schema's ``probe_datasets.<key>.stratify.seed`` (the
#: schema owns every default)
STRATIFY_SEED = schema_default("probe_datasets.<key>.stratify.seed")


@dataclass(frozen=True)
class HubSource:
    """A probe dataset on the Hugging Face Hub and the schema of its rows.

    ``fields`` maps each field of the real dataset to its type (``str``, ``int``, ``list[str]``
    ...), as the published copy has it.
    """

    hub_id: str
    split: str
    fields: Mapping[str, str]
    text_field: str
    config: str | None = None
    revision: str | None = None
    label_field: str | None = None
    id_field: str | None = None
    filters: Mapping = field(default_factory=dict)
    n_rows: int | None = None
    description: str = ""


@dataclass(frozen=True)
class UrlSource:
    """A probe dataset published as JSONL files at pinned URLs, grouped in tiers.

    ``fields`` are present in every file; ``optional_fields`` only in some. ``derived_fields`` do
    not exist in the data: the loader adds them (``tier`` comes from the directory of the file).
    """

    urls: Mapping[str, tuple[str, ...]]
    fields: Mapping[str, str]
    text_field: str
    optional_fields: Mapping[str, str] = field(default_factory=dict)
    derived_fields: Mapping[str, str] = field(default_factory=dict)
    default_tiers: tuple[str, ...] = ()
    label_field: str | None = None
    id_field: str | None = None
    filters: Mapping = field(default_factory=dict)
    description: str = ""


# The authors' generated CoT traces (Appendix C), at a pinned commit of their repository.
COT_COMMIT = "761051bc8d9450a20bee0dddfb3c28c714c9d23a"
COT_BASE = (
    "https://raw.githubusercontent.com/HKUST-KnowComp/Reasoning-Embedding/"
    f"{COT_COMMIT}/datasets/cot-datasets/outputs"
)
COT_FILES: dict[str, tuple[str, ...]] = {
    "easy": ("qwen3_32b_openai_gsm8k_outputs_evaluated.jsonl",),  # 500 rows
    "moderate": (
        "qwen3_32b_HuggingFaceH4_MATH-500_outputs_evaluated.jsonl",  # 479 rows
        "qwen3_32b_AI-MO_NuminaMath-CoT_cn_k12_outputs_evaluated.jsonl",  # 161 rows
    ),
    "hard": ("qwen3_32b_LiveMathbench_evaluated.jsonl",),  # 57 rows, 32 judged correct
}
COT_FIELDS = {
    "timestamp": "str",
    "dataset": "str",
    "split": "str",
    "question_id": "str",
    "model": "str",
    "problem": "str",
    "messages": "list[message]",  # [{role, content}, ...]
    "reasoning": "str",
    "answer": "str",
    "correctness_label": "int",  # 1 correct, 0 incorrect, -1 error or skipped
    "evaluator_model": "str",
}
COT_OPTIONAL_FIELDS = {
    "cot_length_words": "int",
    "cot_length_tokens": "int",
    "cot_length_chars": "int",
    "skipped": "bool",
    "skip_reason": "str",
    "error": "str",
}
# `traces: generated` (registry cot only): the traces this workflow generated and judged
# (hrsa.cot, rules cot_generate -> cot_judge, results/cot/judged/<source>.jsonl) instead of the
# authors' published ones. Same loader, same declared fields, plus these (every row has the
# first set; the second only where it applies). `tier` is then a field of the data.
TRACES = ("published", "generated")
GENERATED_COT_FIELDS = {
    "cot_length_words": "int",
    "cot_length_tokens": "int",  # the authors' estimate, len(reasoning) // 1.3
    "cot_length_chars": "int",
    "skipped": "bool",
    "source": "str",  # the cot_generation.sources key
    "tier": "str",
    "config": "str|null",
    "index": "int",
    "reference_answer": "str|null",
    "generator_model": "str",
    "generator_serve": "str",
    "generation_settings": "object",
    "reasoning_budget": "int|null",
    "budget_measure": "str|null",
    "prompt_hash": "str",
    "prompt_tokens": "int|null",
    "completion_tokens": "int|null",
    "reasoning_tokens": "int|null",
    "reasoning_tokens_source": "str|null",
    "finish_reason": "str|null",
    "generation_status": "str",
    "generation_attempts": "int",
    "judge_model": "str",
    "judge_serve": "str",
    "judge_status": "str",
}
GENERATED_COT_OPTIONAL_FIELDS = {
    "skip_reason": "str",
    "error": "str",
    "judge_settings": "object",
    "judge_prompt_hash": "str",
    "judge_attempts": "int",
    "judge_timestamp": "str",
    "judge_prompt_tokens": "int|null",
    "judge_completion_tokens": "int|null",
    "judge_reply": "str|null",
    "judge_error": "str",
}
MMLU_PRO_CATEGORIES = (
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
)
AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")

# The paper's probe datasets (section 4, Appendix C), with the real sources' schemas.
REGISTRY: dict[str, HubSource | UrlSource] = {
    "cot": UrlSource(
        urls={
            tier: tuple(f"{COT_BASE}/{tier}/{name}" for name in names)
            for tier, names in COT_FILES.items()
        },
        fields=COT_FIELDS,
        optional_fields=COT_OPTIONAL_FIELDS,
        derived_fields={"tier": "str"},
        default_tiers=("hard",),
        text_field="reasoning",
        id_field="question_id",
        filters={"correctness_label": 1},
        description="The authors' generated CoT traces (Appendix C): hard tier, correct traces.",
    ),
    "mmlu_pro": HubSource(
        hub_id="TIGER-Lab/MMLU-Pro",
        split="test",
        fields={
            "question_id": "int",
            "question": "str",
            "options": "list[str]",
            "answer": "str",
            "answer_index": "int",
            "cot_content": "str",
            "category": "str",
            "src": "str",
        },
        text_field="question",
        label_field="answer_index",
        id_field="question_id",
        n_rows=12032,
        description="MMLU-Pro test questions (text = question), 14 categories.",
    ),
    "ag_news": HubSource(
        hub_id="fancyzhx/ag_news",
        split="test",
        # label is a ClassLabel: 0 World, 1 Sports, 2 Business, 3 Sci/Tech
        fields={"text": "str", "label": "int"},
        text_field="text",
        label_field="label",
        n_rows=7600,
        description="AG News topic classification, test split (7,600 rows).",
    ),
}

# The fields each offline generator writes (hrsa.data.synthetic); a test keeps them in sync.
GENERATOR_FIELDS: dict[str, dict[str, str]] = {
    "arithmetic_traces": {"id": "str", "text": "str", "correctness_label": "int", "tier": "str"},
    "multiple_choice": {"id": "str", "text": "str", "label": "int", "category": "str"},
    "topic_sentences": {"id": "str", "text": "str", "label": "int", "topic": "str"},
}

# Keys the loader itself adds to a row (never read from the data): the record's id where the
# source's own id is not unique (CoT question ids repeat across files), and where the row was
# read ("file:line" of a JSONL file, "source: row i" otherwise) for errors about the row.
ROW_ID = "_hrsa_id"
ROW_AT = "_hrsa_at"
LOADER_KEYS = (ROW_ID, ROW_AT)
HUB_ONLY_KEYS = ("hub_id", "config", "split", "revision")
FIELD_KEYS = ("text_field", "label_field", "id_field")


# ----------------------------------------------------------------------------------------------
# Plan-time checks
# ----------------------------------------------------------------------------------------------


def declared_fields(spec: Mapping) -> dict[str, str] | None:
    """The fields (name -> type) a spec's rows have, or None where that is unknown (local files).

    For the CoT source this includes the fields only some files have and the derived ``tier``.
    """
    if "generator" in spec:
        return dict(GENERATOR_FIELDS.get(spec["generator"], {}))
    if "registry" in spec:
        src = REGISTRY.get(spec["registry"])
        if src is None:
            return None
        if isinstance(src, UrlSource):
            if spec.get("traces") == "generated":
                return {**src.fields, **GENERATED_COT_FIELDS, **GENERATED_COT_OPTIONAL_FIELDS}
            return {**src.fields, **src.optional_fields, **src.derived_fields}
        return dict(src.fields)
    return None


def _fields_text(spec: Mapping) -> str:
    if "registry" in spec:
        src = REGISTRY[spec["registry"]]
        text = f"the registry source {spec['registry']!r} declares {sorted(src.fields)}"
        if isinstance(src, UrlSource):
            text += (
                f", in some files {sorted(src.optional_fields)}, derived "
                f"{sorted(src.derived_fields)}"
            )
        return text
    return f"the generator {spec['generator']!r} writes {sorted(declared_fields(spec))}"


def check_spec(key: str, spec: Mapping) -> None:
    """Check the probe dataset spec ``probe_datasets.<key>`` without reading any data.

    Raises :class:`ConfigError` naming the dotted key and the fields the source declares when a
    field it references (text/label/id field, a filter, the stratify field) does not exist in the
    source, or when a key does not apply to the source. Local files are not checked (their
    fields are known only when read).
    """
    where = f"probe_datasets.{key}"
    sources = [k for k in ("generator", "local", "registry") if k in spec]
    if len(sources) != 1:
        raise config_error(where, "needs exactly one of `generator`, `local` or `registry`")
    if "generator" in spec and spec["generator"] not in synthetic.GENERATORS:
        raise config_error(
            f"{where}.generator",
            f"unknown {spec['generator']!r}; expected one of {sorted(synthetic.GENERATORS)}",
        )
    if "registry" in spec and spec["registry"] not in REGISTRY:
        raise config_error(
            f"{where}.registry",
            f"unknown {spec['registry']!r}; expected one of {sorted(REGISTRY)}",
        )
    src = REGISTRY.get(spec.get("registry"))
    if "tiers" in spec:
        if not isinstance(src, UrlSource):
            raise config_error(f"{where}.tiers", "only the registry source 'cot' has tiers")
        for tier in spec["tiers"]:
            if tier not in src.urls:
                raise config_error(
                    f"{where}.tiers", f"unknown tier {tier!r}; expected some of {sorted(src.urls)}"
                )
    if "traces" in spec:
        if spec.get("registry") != "cot":
            raise config_error(
                f"{where}.traces", "only the registry source 'cot' has generated traces"
            )
        if spec["traces"] not in TRACES:
            raise config_error(f"{where}.traces", f"expected one of {list(TRACES)}")
    if isinstance(src, UrlSource):
        for k in HUB_ONLY_KEYS:
            if k in spec:
                raise config_error(
                    f"{where}.{k}",
                    f"the registry source {spec['registry']!r} is read from pinned URLs, "
                    "not a Hub dataset",
                )
    stratify = spec.get("stratify")
    if stratify is not None:
        for k in ("field", "per_group"):
            if k not in stratify:
                raise config_error(f"{where}.stratify", f"needs `{k}`")
        if int(stratify["per_group"]) < 1:
            raise config_error(f"{where}.stratify.per_group", "must be at least 1")
    fields = declared_fields(spec)
    if fields is None:  # a local file: fields are known only when it is read
        return
    if "generator" in spec:
        unsupported = [k for k in (*FIELD_KEYS, *HUB_ONLY_KEYS, "tiers") if k in spec]
        if unsupported:
            raise config_error(f"{where}.{unsupported[0]}", "does not apply to a generator")
    for k in FIELD_KEYS:
        name = spec.get(k)
        if name is not None and name not in fields:
            raise config_error(
                f"{where}.{k}", f"{name!r} is not a field of the source; {_fields_text(spec)}"
            )
    for name in spec.get("filters") or {}:
        if name not in fields:
            raise config_error(
                f"{where}.filters.{name}",
                f"{name!r} is not a field of the source; {_fields_text(spec)}",
            )
    if stratify is not None and stratify["field"] not in fields:
        raise config_error(
            f"{where}.stratify.field",
            f"{stratify['field']!r} is not a field of the source; {_fields_text(spec)}",
        )


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _rows(ds) -> list[dict]:
    """A ``datasets.Dataset`` (or any iterable of mappings) as a list of plain dicts."""
    return [dict(r) for r in ds]


def _kind(value) -> str:
    """What a JSON value is, for an error: ``null``, ``a number (12345)``, ``a list ([...])``."""
    if value is None:
        return "null"
    if isinstance(value, float) and value != value:  # a table's missing value
        return "missing (NaN)"
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if isinstance(value, bool):
        return f"a boolean ({shown})"
    if isinstance(value, int | float):
        return f"a number ({shown})"
    if isinstance(value, list | tuple):
        return f"a list ({shown})"
    if isinstance(value, dict):
        return f"an object ({shown})"
    return f"a {type(value).__name__} ({shown})"


def _located(rows: list[dict], source: str) -> list[dict]:
    """``rows`` with where each was read (``source: row i``, i counted from 0) for errors."""
    for i, r in enumerate(rows):
        r[ROW_AT] = f"{source}: row {i}"
    return rows


def _fields(row: Mapping) -> list[str]:
    """The data's fields of a row (without the loader's own keys)."""
    return sorted(k for k in row if k not in LOADER_KEYS)


def iter_jsonl(path: str | os.PathLike):
    """``(line number, value)`` of every non-blank line of the JSONL file ``path`` (UTF-8).

    Undecodable bytes and malformed JSON are a :class:`DataError` naming ``file:line``."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                    f"{exc.start + 1}); save the file as UTF-8"
                ) from exc
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc


def _apply_filters(rows: list[dict], filters: Mapping, where: str) -> list[dict]:
    for name, want in (filters or {}).items():
        allowed = want if isinstance(want, list) else [want]
        if rows and name not in rows[0]:
            raise DataError(
                f"{where}: filter field {name!r} is not in the data (fields: {_fields(rows[0])})"
            )
        rows = [r for r in rows if r.get(name) in allowed]
    return rows


def stratified_sample(
    rows: list[dict], field_name: str, per_group: int, seed: int, where: str = "dataset"
) -> list[dict]:
    """Exactly ``per_group`` rows of every value of ``field_name``, drawn with ``seed``.

    Groups are visited in sorted order and each is sampled with its own generator seeded by
    ``seed`` and the group's value, so a group's rows do not depend on the other groups. The
    kept rows stay in their original order. A group smaller than ``per_group`` is an error naming
    it (a silent shortfall would change the balance the analysis assumes).
    """
    groups: dict = {}
    for i, r in enumerate(rows):
        if field_name not in r:
            raise DataError(f"{where}: stratify field {field_name!r} is not in row {i}")
        groups.setdefault(r[field_name], []).append(i)
    small = {g: len(ix) for g, ix in groups.items() if len(ix) < per_group}
    if small:
        raise DataError(
            f"{where}: stratify by {field_name!r} needs {per_group} rows per group; too few in "
            + ", ".join(f"{g!r} ({n})" for g, n in sorted(small.items(), key=lambda kv: str(kv[0])))
        )
    keep: list[int] = []
    for g in sorted(groups, key=str):
        keep += random.Random(f"{seed}/{g}").sample(groups[g], per_group)
    return [rows[i] for i in sorted(keep)]


def _normalise(
    rows: list[dict],
    text_field: str,
    label_field: str | None,
    id_field: str | None,
    prefix: str,
    where: str,
    *,
    strict: bool = True,
) -> list[dict]:
    """id/text/label records. ``strict``: every named field must be in every row.

    The text must be a string (a null, a number or a list is an error naming the row's file and
    line, not analysed as its ``str``); ids must be unique. A row without an id (a local file's
    row lacking ``id_field``, or null there) gets ``{prefix}-{i}``, made longer where that
    would collide with an id of the data."""
    at = [r[ROW_AT] if ROW_AT in r else f"{where}: row {i}" for i, r in enumerate(rows)]
    ids: list[str | None] = []
    for i, r in enumerate(rows):
        for name in (text_field, label_field, id_field):
            if name is not None and strict and name not in r:
                raise DataError(f"{at[i]}: no field {name!r} (fields: {_fields(r)})")
        if text_field not in r:
            raise DataError(f"{at[i]}: no text field {text_field!r} (fields: {_fields(r)})")
        if not isinstance(r[text_field], str):
            raise DataError(
                f"{at[i]}: field {text_field!r} (the text) is {_kind(r[text_field])}, not a string"
            )
        if ROW_ID in r:  # set by the loader (URL sources: ids repeat across files)
            ids.append(r[ROW_ID])
        elif id_field is not None and r.get(id_field) is not None:
            ids.append(str(r[id_field]))
        else:
            ids.append(None)
    given = {rid for rid in ids if rid is not None}
    stem = prefix
    while any(f"{stem}-{i}" in given for i, rid in enumerate(ids) if rid is None):
        stem += "-generated"  # never equal to an id of the data
    first: dict[str, int] = {}
    out = []
    for i, r in enumerate(rows):
        rid = ids[i] if ids[i] is not None else f"{stem}-{i}"
        if rid in first:
            raise DataError(
                f"{at[i]}: id {rid!r} repeats the id of {at[first[rid]]}"
                + (f" (field {id_field!r})" if id_field is not None else "")
                + "; ids must be unique"
            )
        first[rid] = i
        out.append(
            {
                "id": rid,
                "text": r[text_field],
                "label": r[label_field] if label_field is not None and label_field in r else None,
            }
        )
    return out


def _read_local(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: local probe dataset file not found")
    if path.suffix == ".parquet":
        import pandas as pd

        return _located(pd.read_parquet(path).to_dict("records"), str(path))
    rows = []
    for lineno, row in iter_jsonl(path):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: not a JSON object (a row is {{field: value}})")
        row[ROW_AT] = f"{path}:{lineno}"
        rows.append(row)
    return rows


def _read_url_source(
    src: UrlSource,
    tiers,
    id_field: str | None,
    *,
    mirror,
    cache_dir,
    where: str,
    files: Mapping[str, list] | None = None,
) -> list[dict]:
    """Rows of every file of the chosen tiers, each with the derived ``tier`` (its directory).

    ``files`` (tier -> local JSONL files) replaces the source's URLs: the generated traces."""
    rows: list[dict] = []
    for tier in tiers:
        for url in src.urls[tier] if files is None else files.get(tier, []):
            if files is None:
                file_rows = _rows(remote.read_jsonl_url(url, cache_dir=cache_dir, mirror=mirror))
            else:
                file_rows = _rows(remote.read_jsonl_file(url))
            stem = url.rsplit("/", 1)[-1].removesuffix(".jsonl")
            _located(file_rows, url)
            for r in file_rows:
                missing = [f for f in src.fields if f not in r]
                if missing:
                    raise DataError(
                        f"{where}: {url} has rows without the declared fields {missing}"
                    )
                r["tier"] = tier
                if id_field is not None:
                    r[ROW_ID] = f"{tier}/{stem}/{r[id_field]}"
            log.info("%s: %d rows from %s", where, len(file_rows), url)
            rows += file_rows
    return rows


def load_probe_dataset(
    key: str,
    spec: Mapping,
    *,
    mirror: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    generated: Mapping[str, list] | None = None,
) -> list[dict]:
    """Materialise the probe dataset ``key`` described by ``spec`` as id/text/label records.

    ``mirror`` (``config["data_mirror"]``) reads registry sources from local copies;
    ``cache_dir`` is where files at URLs are downloaded (default ``results/prefetch/data``);
    ``generated`` (tier -> judged JSONL files of ``hrsa.cot``; default: the spec's
    ``generated_files``, which ``hrsa.plan.Plan.probe_spec`` adds) is what ``traces: generated``
    reads instead of the published traces.
    """
    check_spec(key, spec)
    where = f"probe_datasets.{key}"
    filters = dict(spec.get("filters") or {})
    strict = True
    if "generator" in spec:
        name = spec["generator"]
        rows = synthetic.GENERATORS[name](int(spec.get("n", 100)), int(spec.get("seed", 0)))
        text_field, label_field, id_field = "text", "label", "id"
        if "label" not in GENERATOR_FIELDS[name]:
            label_field = None
        rows = _apply_filters(rows, filters, where)
    elif "local" in spec:
        path = Path(spec["local"])
        where = str(path)
        rows = _apply_filters(_read_local(path), filters, where)
        text_field = spec.get("text_field", "text")
        label_field = spec.get("label_field", "label")
        id_field = spec.get("id_field", "id")
        strict = False  # a local file may lack a label or an id
    else:
        src = REGISTRY[spec["registry"]]
        text_field = spec.get("text_field", src.text_field)
        label_field = spec.get("label_field", src.label_field)
        id_field = spec.get("id_field", src.id_field)
        if isinstance(src, UrlSource):
            tiers = list(spec.get("tiers") or src.default_tiers)
            files = None
            if spec.get("traces") == "generated":
                files = dict(generated or spec.get("generated_files") or {})
                if not any(files.get(t) for t in tiers):
                    raise DataError(
                        f"{where}: traces: generated, but no generated traces of the tiers "
                        f"{tiers} were given (cot_generation.sources with those tiers)"
                    )
            rows = _read_url_source(
                src,
                tiers,
                id_field,
                mirror=mirror,
                cache_dir=cache_dir or "results/prefetch/data",
                where=where,
                files=files,
            )
        else:
            hub_id = spec.get("hub_id", src.hub_id)
            rows = _rows(
                remote.load_hub_dataset(
                    hub_id,
                    name=spec.get("config", src.config),
                    split=spec.get("split", src.split),
                    revision=spec.get("revision", src.revision),
                    mirror=mirror,
                    what=f"probe dataset {key!r}",
                )
            )
            where = f"{where} ({hub_id})"
            _located(rows, where)
        n_read = len(rows)
        rows = _apply_filters(rows, {**src.filters, **filters}, where)
        log.info("%s: %d of %d rows pass the filters", where, len(rows), n_read)
    rows = [r for r in rows if str(r.get(text_field, "x")).strip()]
    stratify = spec.get("stratify")
    if stratify is not None:
        rows = stratified_sample(
            rows,
            stratify["field"],
            int(stratify["per_group"]),
            int(stratify.get("seed", STRATIFY_SEED)),
            where,
        )
        log.info("%s: stratified sample of %d rows", where, len(rows))
    records = _normalise(rows, text_field, label_field, id_field, key, where, strict=strict)
    if "limit" in spec:
        records = records[: int(spec["limit"])]
    records = [r for r in records if r["text"].strip()]
    if not records:
        raise DataError(
            f"{where}: the dataset is empty after filtering ({filters or 'no filters'})"
        )
    return records


def write_jsonl(records: list[dict], path: str | os.PathLike) -> None:
    """Write records as JSONL atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
