"""Probe datasets for HRSA: a registry of hub sources with local overrides and offline generators.

A dataset spec (``config["probe_datasets"][key]``) is one of

* ``{generator: arithmetic_traces|multiple_choice|topic_sentences, n: 120, seed: 0}`` - offline;
* ``{local: path/to/file.jsonl|.parquet, text_field: text, label_field: label}`` - a local file;
* ``{registry: cot|mmlu_pro|ag_news}`` (optionally overriding fields) - the hub source below.

Every source can carry ``filters`` (field -> required value, or a list of allowed values) and
``limit`` (first N rows after filtering). The output is always JSONL with ``id``, ``text`` and
``label`` (None when the dataset has no label).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import atomic_path
from ..errors import ConfigError, DataError
from . import synthetic


@dataclass(frozen=True)
class HubSource:
    """Where a probe dataset lives on the Hugging Face Hub and how to read it."""

    hub_id: str
    split: str
    text_field: str
    config: str | None = None
    revision: str | None = None
    label_field: str | None = None
    id_field: str | None = None
    filters: dict = field(default_factory=dict)
    description: str = ""


# The paper's probe datasets (section 4, Appendix C). The CoT dataset is the authors' generated
# traces; only correct traces of the hard tier are analysed (correctness_label == 1).
REGISTRY: dict[str, HubSource] = {
    "cot": HubSource(
        hub_id="lucaswychan/CoT-Activations",
        split="train",
        text_field="text",
        filters={"correctness_label": 1, "difficulty": "hard"},
        description="Generated CoT traces (Appendix C), hard tier, correct traces only.",
    ),
    "mmlu_pro": HubSource(
        hub_id="TIGER-Lab/MMLU-Pro",
        split="test",
        text_field="question",
        label_field="answer_index",
        id_field="question_id",
        description="MMLU-Pro questions (text = question).",
    ),
    "ag_news": HubSource(
        hub_id="fancyzhx/ag_news",
        split="test",
        text_field="text",
        label_field="label",
        description="AG News topic classification, test split (7,600 rows).",
    ),
}


def _apply_filters(rows: list[dict], filters: dict, where: str) -> list[dict]:
    for key, want in (filters or {}).items():
        allowed = want if isinstance(want, list) else [want]
        if rows and key not in rows[0]:
            raise DataError(
                f"{where}: filter field {key!r} is not in the data (fields: {sorted(rows[0])})"
            )
        rows = [r for r in rows if r.get(key) in allowed]
    return rows


def _normalise(
    rows: list[dict],
    text_field: str,
    label_field: str | None,
    id_field: str | None,
    prefix: str,
    where: str,
) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        if text_field not in r:
            raise DataError(
                f"{where}: row {i} has no text field {text_field!r} (fields: {sorted(r)})"
            )
        out.append(
            {
                "id": str(r[id_field]) if id_field and id_field in r else f"{prefix}-{i}",
                "text": str(r[text_field]),
                "label": r.get(label_field) if label_field else r.get("label"),
            }
        )
    return out


def _read_local(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: local probe dataset file not found")
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records")
    rows = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
    return rows


def load_probe_dataset(key: str, spec: dict) -> list[dict]:
    """Materialise the probe dataset ``key`` described by ``spec`` as id/text/label records."""
    where = f"probe_datasets.{key}"
    filters = spec.get("filters", {})
    if "generator" in spec:
        name = spec["generator"]
        if name not in synthetic.GENERATORS:
            raise ConfigError(
                f"{where}.generator: unknown {name!r}; expected one of {sorted(synthetic.GENERATORS)}"
            )
        rows = synthetic.GENERATORS[name](int(spec.get("n", 100)), int(spec.get("seed", 0)))
        rows = _apply_filters(rows, filters, where)
        records = _normalise(rows, "text", "label", "id", key, where)
    elif "local" in spec:
        path = Path(spec["local"])
        rows = _apply_filters(_read_local(path), filters, str(path))
        records = _normalise(
            rows,
            spec.get("text_field", "text"),
            spec.get("label_field", "label"),
            spec.get("id_field", "id"),
            key,
            str(path),
        )
    elif "registry" in spec:
        name = spec["registry"]
        if name not in REGISTRY:
            raise ConfigError(
                f"{where}.registry: unknown {name!r}; expected one of {sorted(REGISTRY)}"
            )
        src = HubSource(
            **{
                **asdict(REGISTRY[name]),
                **{k: v for k, v in spec.items() if k in HubSource.__dataclass_fields__},
            }
        )
        import datasets

        try:
            ds = datasets.load_dataset(
                src.hub_id, src.config, split=src.split, revision=src.revision
            )
        except Exception as exc:
            raise DataError(
                f"{where}: cannot load {src.hub_id!r} (split {src.split!r}): {exc}. On a cluster, "
                "prefetch datasets on the submit node first; or set `local:` to a JSONL/parquet file."
            ) from exc
        rows = _apply_filters([dict(r) for r in ds], {**src.filters, **filters}, src.hub_id)
        records = _normalise(rows, src.text_field, src.label_field, src.id_field, key, src.hub_id)
    else:
        raise ConfigError(f"{where}: needs one of `generator`, `local` or `registry`")
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
