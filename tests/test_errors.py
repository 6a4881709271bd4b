"""One wording for errors about a config key: ``config key <dotted.key>: <problem>``.

The check reads the source (``ast``), so a message that starts with a bare key (``training.x:
...``, ``hrsa.ci must be ...``, ``config['report'][...]``, ``chunk_size must be ...``) cannot
come back. Errors about something other than a config key keep their own, clear wording (see
:data:`EXCEPTIONS`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import hrsa
from hrsa.config import load_schema
from hrsa.errors import ConfigError, config_error

SRC = Path(hrsa.__file__).resolve().parent
PREFIX = "config key "
PLACEHOLDER = "<key>"  # what a formatted value ({...}) of an f-string reads as here

# Messages that name no config key on purpose, by (file, start of the message). Each is about
# something else: a file, a function's own argument, or a generated file's format.
EXCEPTIONS = {
    # the prompts file of evaluation.prompts: errors name the file ("prompts file <path>: ...")
    ("evaluate/instructions.py", "prompts file "),
    # a library function's argument (no config key: the workflow never passes fractions)
    ("metrics/function.py", "probe split fractions "),
    # arguments of the rehearsal generator (hrsa rehearsal's options, not config keys)
    ("rehearsal.py", "rehearsal: "),
    ("rehearsal.py", "not a generated rehearsal config"),
    # arguments of the mirror writer (called by the rehearsal, not from a config section)
    ("data/training_fixtures.py", "write_training_mirror: "),
}


def _schema_names() -> tuple[set[str], set[str]]:
    """Top-level keys of the config schema, and every key name at any depth."""
    schema = load_schema()
    names: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            names.update((node.get("properties") or {}).keys())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return set(schema["properties"]), names


TOP_KEYS, KEY_NAMES = _schema_names()
# a dotted key: flagged when it starts with a top-level key of the schema
DOTTED_KEY = re.compile(r"^(?P<top>[A-Za-z_][\w-]*)(?:\.[\w<>{}\-]+)+")
# a (dotted) key, then what follows a key in a message: ':', '[' or a verb
BARE_KEY = re.compile(
    r"^(?P<key>[A-Za-z_][\w-]*(?:\.[\w<>{}\-]+)*)"
    r"(?::|\[|\s+(?:must|has|have|needs|is|are|lacks|applies|names)\b)"
)


def _render(node: ast.expr) -> str | None:
    """The text of a str literal or f-string, formatted values shown as ``<key>``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "a" "b" + f"..."
        left = _render(node.left)
        return None if left is None else left + (_render(node.right) or PLACEHOLDER)
    return None


def bare_key_problem(message: str) -> str | None:
    """Why ``message`` breaks the wording, or None: it starts with a config key (or
    ``config[...]``) that ``config key `` does not precede."""
    if message.startswith(PREFIX):
        key = message[len(PREFIX) :].split(":", 1)[0]
        top = key.split(".", 1)[0]
        if ":" not in message or (top not in TOP_KEYS and top != PLACEHOLDER):
            return f"{key!r} after 'config key ' is no key of the config schema"
        return None
    if message.startswith("config["):
        return "config[...] instead of 'config key <dotted.key>: '"
    dotted = DOTTED_KEY.match(message)
    if dotted and dotted["top"] in TOP_KEYS:  # training.x ..., whatever follows
        return f"starts with the bare key {dotted[0]!r}"
    match = BARE_KEY.match(message)  # chunk_size must ..., device: ..., hrsa: ...
    if match and match["key"].split(".", 1)[0] in KEY_NAMES:
        return f"starts with the bare key {match['key']!r}"
    return None


def _callee(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "ConfigError":
            return f"ConfigError.{func.attr}"
        return func.attr
    return None


def config_error_calls():
    """(file, line, callee, rendered first argument) of every ConfigError(...) and
    config_error(...)/ConfigError.at(...) in src/hrsa."""
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            callee = _callee(node)
            if callee in ("ConfigError", "config_error", "ConfigError.at"):
                rel = path.relative_to(SRC).as_posix()
                yield rel, node.lineno, callee, _render(node.args[0])


def test_config_error_helper_words_the_message():
    err = config_error("training.data.scale", "must be a number > 0, got 0")
    assert isinstance(err, ConfigError)
    assert str(err) == "config key training.data.scale: must be a number > 0, got 0"
    assert str(ConfigError.at("device", "x")) == "config key device: x"


@pytest.mark.parametrize(
    "message",
    [
        "training.max_steps: must be a positive integer",
        "hrsa.<key> must be >= 1, got 0",
        "hrsa: unknown settings ['x']",
        "config['report']['verdicts'] has unknown key(s) ['x']",
        "config['pairs']['p'] lacks 'family'",
        "device: 'tpu' is not a torch device",
        "chunk_size must be >= 1, got 0",
        "ci must be in (0, 1), got 2",
        "training.data.rows names sources that are not used: ['x']",
        "training.global_batch_size 30 is not divisible by 4 processes",
        "config key trainig.data: a typo in the key",
    ],
)
def test_the_check_catches_the_old_wordings(message):
    assert bare_key_problem(message), message


@pytest.mark.parametrize(
    "message",
    [
        "config key training.data.scale: must be a number > 0",
        "config key <key>.stratify: needs `field`",
        "prompts file 'p.yaml': unknown keys ['x']",
        "probe split fractions must be three non-negative numbers summing to 1",
        "unknown tiny recipe 'x'",
        "cannot generate 5 distinct rows for the mirror copy of 'nli'",
    ],
)
def test_the_check_passes_other_wordings(message):
    assert bare_key_problem(message) is None, message


def test_every_config_error_names_its_key_as_config_key():
    bad = []
    used = set()
    calls = list(config_error_calls())
    assert len(calls) > 50  # the scan sees the package's errors
    for rel, line, callee, text in calls:
        if text is None:
            continue  # a message built elsewhere (a variable): its own literal is checked there
        if callee == "ConfigError":
            exception = next((e for e in EXCEPTIONS if e[0] == rel and text.startswith(e[1])), None)
            if exception:
                used.add(exception)
                continue
            problem = bare_key_problem(text)
        else:  # config_error(key, problem): the key must be a dotted key of the schema
            top = text.split(".", 1)[0]
            problem = None if top in TOP_KEYS or top == PLACEHOLDER else f"key {text!r}"
        if problem:
            bad.append(f"src/hrsa/{rel}:{line}: {callee}({text!r}...): {problem}")
    assert not bad, "write config_error(key, problem) instead:\n" + "\n".join(bad)
    assert used == EXCEPTIONS, f"stale exceptions: {sorted(EXCEPTIONS - used)}"
