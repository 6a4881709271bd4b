"""config/README.md's key tables agree with the config schema, the one owner of every default.

How the tables are read (config/README.md, "Reading the tables", says the same):

* **Section.** A table belongs to the nearest ``## `` heading above it. The heading's first
  backticked span is the dotted prefix of the table's keys (``## `hrsa` `` -> ``hrsa.<key>``,
  ``## `models.<key>` `` -> ``models.<key>.<key>``, where ``<key>`` stands for any entry of a
  map); a heading without a backticked span (``## Top level``) is the top level. ``###``
  headings do not start a section.
* **Key tables** are the tables whose header has ``key`` first and a ``default`` column; other
  tables (registries, data sources) are not read. Every row of a key table names its keys in its
  first cell: one backticked key, or several separated by commas. The first key is dotted
  relative to the section; a further key without a dot is a sibling of the first
  (``training``: `` `mining.num_negatives`, `relative_margin` `` -> ``training.mining.num_negatives``
  and ``training.mining.relative_margin``), a further key with a dot is relative to the section.
* **Cells of a multi-key row** hold one item per key, separated by commas outside backticks, or a
  single item that applies to every key of the row.
* **``default`` column**: an item that is exactly one backticked YAML literal is the schema's
  ``default`` of that key (equal after YAML parsing, int and float and bool kept apart); any
  other item (words: a derived default, ``unset``, ``required``) means the schema has no
  ``default`` for the key.
* **``config.yaml`` / ``paper.yaml`` columns** (headers may be backticked; where a table has them): a backticked literal is
  the value that file sets, words say what it sets (not compared), and an empty cell or ``-``
  means the file does not set the key (the default applies).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "config" / "README.md"
SCHEMA = ROOT / "src" / "hrsa" / "schemas" / "config.schema.yaml"
CONFIG_COLUMNS = ("config.yaml", "paper.yaml")
ANY = "<key>"  # a map's entry in a dotted key (additionalProperties in the schema)
MISSING = object()

_KEYS_CELL = re.compile(r"^`[^`]+`(\s*,\s*`[^`]+`)*$")
_LITERAL = re.compile(r"^`([^`]+)`$")


# ---------------------------------------------------------------- reading config/README.md
def split_items(cell: str) -> list[str]:
    """A cell cut at commas outside backticks, each item stripped."""
    items, buf, quoted = [], [], False
    for ch in cell:
        if ch == "`":
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    items.append("".join(buf).strip())
    return items


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def readme_rows(text: str) -> list[dict]:
    """Every row of every key table: ``{"key", "line", "default", "config.yaml", ...}`` with one
    entry per key (multi-key rows expanded), values the raw items (``""`` for an empty cell)."""
    rows, section, header = [], None, None
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if line.startswith("## "):
            span = re.search(r"`([^`]+)`", line)
            section, header = (span.group(1) if span else ""), None
            continue
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = [c.strip("`") for c in cells]
            continue
        if set("".join(cells)) <= set("-: "):  # the |---|---| line
            continue
        if header[0] != "key" or "default" not in header:
            continue
        assert section is not None, f"README line {number}: key table before any ## heading"
        assert _KEYS_CELL.match(cells[0]), (
            f"README line {number}: first cell {cells[0]!r} is not one or more backticked keys"
        )
        keys = [k.strip().strip("`") for k in split_items(cells[0])]
        first = keys[0]
        parent = first.rsplit(".", 1)[0] + "." if "." in first else ""
        dotted = [first] + [k if "." in k else parent + k for k in keys[1:]]
        dotted = [f"{section}.{k}" if section else k for k in dotted]
        columns = {}
        for name in ("default", *CONFIG_COLUMNS):
            if name not in header:
                continue
            cell = cells[header.index(name)]
            items = split_items(cell) if len(keys) > 1 else [cell]
            assert len(items) in (1, len(keys)), (
                f"README line {number}: {name} cell {cell!r} has {len(items)} items for "
                f"{len(keys)} keys"
            )
            columns[name] = items * len(keys) if len(items) == 1 else items
        for i, key in enumerate(dotted):
            rows.append(
                {"key": key, "line": number} | {name: items[i] for name, items in columns.items()}
            )
    return rows


def literal(item: str):
    """The YAML value of an item that is exactly one backticked literal, else MISSING."""
    match = _LITERAL.match(item)
    return yaml.safe_load(match.group(1)) if match else MISSING


def same(a, b) -> bool:
    """Equal with int, float and bool kept apart (``1`` is not ``1.0`` is not ``true``)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# ---------------------------------------------------------------- reading the schema
def schema_node(schema: dict, key: str) -> dict | None:
    node = schema
    for part in key.split("."):
        if part == ANY:
            node = node.get("additionalProperties")
        else:
            node = (node.get("properties") or {}).get(part)
        if not isinstance(node, dict):
            return None
    return node


def schema_leaves(schema: dict, prefix: str = ""):
    """``(dotted key, node)`` of every key below ``schema``; sections are walked into, not
    yielded (their ``default: {}`` only creates them)."""
    for name, node in (schema.get("properties") or {}).items():
        key = prefix + name
        if _is_section(node):
            yield from schema_leaves(node, key + ".")
        else:
            yield key, node
    if _is_section(schema.get("additionalProperties")):
        yield from schema_leaves(schema["additionalProperties"], prefix + ANY + ".")


def _is_section(node) -> bool:
    """An object with named properties, or a map whose entries have them (``models``)."""
    if not isinstance(node, dict):
        return False
    extra = node.get("additionalProperties")
    return "properties" in node or (isinstance(extra, dict) and "properties" in extra)


def config_value(config: dict, key: str):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


# ---------------------------------------------------------------- the checks
def readme_problems(text: str, schema: dict, configs: dict[str, dict]) -> list[str]:
    """Every disagreement between the README's key tables, the schema and the config files."""
    problems = []
    rows = readme_rows(text)
    documented = {}
    for row in rows:
        key, where = row["key"], f"README line {row['line']}: {row['key']}"
        documented.setdefault(key, row)
        node = schema_node(schema, key)
        if node is None:
            problems.append(f"{where}: no such key in the schema")
            continue
        value = literal(row["default"])
        if value is MISSING:
            if "default" in node:
                problems.append(
                    f"{where}: README gives {row['default']!r} (no literal), the schema's default "
                    f"is {node['default']!r}"
                )
        elif "default" not in node:
            problems.append(f"{where}: README default {row['default']} but the schema has none")
        elif not same(value, node["default"]):
            problems.append(
                f"{where}: README default {row['default']} != schema default {node['default']!r}"
            )
        for name in CONFIG_COLUMNS:
            if name not in row:
                continue
            item, actual = row[name], config_value(configs[name], key)
            if item in ("", "-"):
                if actual is not MISSING:
                    problems.append(f"{where}: {name} sets {actual!r}, the README cell is empty")
            elif actual is MISSING:
                problems.append(f"{where}: README {name} cell {item!r}, the file does not set it")
            elif literal(item) is not MISSING and not same(literal(item), actual):
                problems.append(f"{where}: README {name} {item} != the file's {actual!r}")
    for key, node in schema_leaves(schema):
        if "default" in node and key not in documented:
            problems.append(f"schema key {key} (default {node['default']!r}) is not in the README")
        if "derived default" in node.get("description", "") and key not in documented:
            problems.append(f"schema key {key} has a derived default and is not in the README")
    return problems


@pytest.fixture(scope="module")
def inputs():
    configs = {
        name: yaml.safe_load((ROOT / "config" / name).read_text()) for name in CONFIG_COLUMNS
    }
    return README.read_text(), yaml.safe_load(SCHEMA.read_text()), configs


def test_readme_tables_are_read(inputs):
    text, _, _ = inputs
    keys = {row["key"] for row in readme_rows(text)}
    # one key of each section, a multi-key row's sibling and a map entry
    for key in (
        "threads",
        "hub.offline_jobs",
        "activations.batch_size",
        "hrsa.bootstrap",
        "hrsa.probe.max_iter",
        "training.mining.relative_margin",
        "training.warmup_ratio",
        "evaluation.mteb_seed",
        "report.verdicts.knn_k",
        "models.<key>.dtype",
        "pairs.<key>.train",
        "probe_datasets.<key>.labelled",
    ):
        assert key in keys


def test_readme_defaults_equal_the_schema_and_the_config_columns_the_files(inputs):
    problems = readme_problems(*inputs)
    assert not problems, "config/README.md disagrees:\n" + "\n".join(problems)


def _row_line(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


@pytest.mark.parametrize(
    "edit",
    [
        "readme default",
        "schema default",
        "schema default of a multi-key row",
        "readme key dropped",
        "schema gains a default",
        "readme config.yaml value",
    ],
)
def test_a_changed_default_on_either_side_is_caught(inputs, edit):
    text, schema, configs = copy.deepcopy(inputs)
    if edit == "readme default":
        line = _row_line(text, "`bootstrap`")
        text = text.replace(line, line.replace("`50`", "`51`", 1))
    elif edit == "schema default":
        schema["properties"]["hrsa"]["properties"]["bootstrap"]["default"] = 51
    elif edit == "schema default of a multi-key row":
        mining = schema["properties"]["training"]["properties"]["mining"]["properties"]
        mining["relative_margin"]["default"] = 0.1
    elif edit == "readme key dropped":
        text = text.replace(_row_line(text, "`knn_max_tokens`") + "\n", "")
    elif edit == "schema gains a default":
        schema["properties"]["training"]["properties"]["num_negatives"]["default"] = 3
    elif edit == "readme config.yaml value":
        line = _row_line(text, "`max_steps`, `save_every`")
        text = text.replace(line, line.replace("`30`, `10` | `782`", "`31`, `10` | `782`", 1))
    assert text != inputs[0] or schema != inputs[1]
    assert readme_problems(text, schema, configs)


def test_split_items_keeps_commas_inside_backticks():
    assert split_items("`[5, 10, 50]`, `{a: 1, b: 2}`, words") == [
        "`[5, 10, 50]`",
        "`{a: 1, b: 2}`",
        "words",
    ]
