"""The authors' published evaluation instructions, read at run time (never copied here).

Config key ``evaluation.prompts: {authors: ..., authors_bright: ..., unlisted: ..., fallback: ...}``
(config/README.md). The files are the authors' own (``HKUST-KnowComp/Reasoning-Embedding`` at a
pinned commit; the prefetch step downloads them on the submit node, :func:`prefetch_authors_file`),
or local copies in the same format:

* ``evaluation/task_prompts.json``: one JSON object, task name -> instruction, plus ``default``
  (the instruction of every task it does not name: their ``evaluate_mteb.py`` gives it to such a
  task). A few entries are ``{"query": ..., "passage": ...}``; queries get ``query``, passages
  never get an instruction (their script puts an empty document prompt on every task).
* ``evaluation/evaluate_bright.py``: a dict literal ``Instructions = {domain: instruction}`` with
  one instruction per BRIGHT domain (the subsets of mteb's ``BrightRetrieval``). It is read with
  :mod:`ast` (:func:`ast.literal_eval` of that one literal), never imported or run. A JSON object
  ``{domain: instruction}`` works as well.

Lookup for (task, subset): BRIGHT's domain instruction, then the task's entry, then - for a task
the file lacks - its ``default`` (``unlisted: authors_default``, as the authors ran it) or this
project's prompts file (``unlisted: fallback``; also when the file has no ``default``, and for a
BRIGHT domain their BRIGHT file lacks: BRIGHT never got their default). Every
lookup is a :class:`~hrsa.evaluate.instructions.Resolved` that says which of these it was; the
template is the fallback file's (the authors': ``Instruct: {instruction}\\nQuery: ``).
"""

from __future__ import annotations

import ast
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import schema_default
from ..errors import DataError
from .instructions import InstructionLookup, Instructions, Resolved, file_sha256

log = logging.getLogger("hrsa.evaluate.authors")

#: mteb's BRIGHT task, whose subsets (domains) the authors' BRIGHT instructions are keyed by
BRIGHT_TASK = "BrightRetrieval"
#: the name of the dict literal in the authors' evaluate_bright.py
BRIGHT_VARIABLE = "Instructions"
#: the entry of task_prompts.json for tasks it does not name
DEFAULT_KEY = "default"
#: what ``unlisted`` may say (the schema's enum), and its default
UNLISTED = ("authors_default", "fallback")
DEFAULT_UNLISTED = schema_default("evaluation.prompts.unlisted")
#: instruction files of the authors, by config key of ``evaluation.prompts``
KINDS = ("authors", "authors_bright")


def _where(origin: str | os.PathLike) -> str:
    return f"authors' instruction file {str(origin)!r}"


def parse_task_prompts(text: str, origin: str = "<text>") -> tuple[dict, str | None, dict]:
    """``(tasks, default, notes)`` of a task_prompts.json: task -> the instruction its queries
    get, the ``default`` entry (None when absent) and task -> a note on how its entry was read.

    A value is a non-empty string or a mapping with a non-empty string ``query``; anything else is
    a :class:`DataError` naming the file and the task. A task named twice keeps its last entry
    (as ``json.load`` did for the authors), with a warning and a note.
    """
    repeated: dict[str, int] = {}

    def pairs(items):
        keys = [key for key, _ in items]
        repeated.update({k: keys.count(k) for k in set(keys) if keys.count(k) > 1})
        return dict(items)  # the last entry wins, as with json.load

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise DataError(f"{_where(origin)}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{_where(origin)}: expected a JSON object of task -> instruction")
    default = data.pop(DEFAULT_KEY, None)
    if default is not None and not (isinstance(default, str) and default.strip()):
        raise DataError(f"{_where(origin)}: {DEFAULT_KEY!r} must be a non-empty string")
    tasks, notes = {}, {}
    for task, value in data.items():
        if isinstance(value, dict):
            query = value.get("query")
            if not (isinstance(query, str) and query.strip()):
                raise DataError(
                    f"{_where(origin)}: task {task!r}: a mapping needs a non-empty 'query' "
                    f"(has {sorted(value)})"
                )
            tasks[task] = query
            notes[task] = (
                "a query/passage entry: queries get its query, documents no instruction "
                "(the authors' script formats the whole mapping into the query prompt)"
            )
        elif isinstance(value, str) and value.strip():
            tasks[task] = value
        else:
            raise DataError(
                f"{_where(origin)}: task {task!r}: expected a non-empty string or "
                f"{{query, passage}}, got {value!r}"
            )
    for task, n in repeated.items():
        if task in tasks:
            log.warning("%s names %s %d times; its last entry is used", origin, task, n)
            notes[task] = "; ".join(filter(None, [notes.get(task), f"named {n} times: last kept"]))
    return tasks, default, notes


def parse_bright_instructions(text: str, origin: str = "<text>") -> dict[str, str]:
    """Domain -> instruction from the authors' evaluate_bright.py (the dict literal assigned to
    :data:`BRIGHT_VARIABLE`, read with :func:`ast.literal_eval`, never run) or from a JSON object.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = _bright_literal(text, origin)
    if not isinstance(data, dict) or not data:
        raise DataError(f"{_where(origin)}: expected a non-empty mapping of BRIGHT domains")
    bad = [k for k, v in data.items() if not (isinstance(v, str) and v.strip())]
    if bad:
        raise DataError(f"{_where(origin)}: domains {bad} have no instruction text")
    return {str(k): v for k, v in data.items()}


def _bright_literal(text: str, origin: str) -> dict:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise DataError(f"{_where(origin)}: neither JSON nor Python ({exc})") from exc
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if BRIGHT_VARIABLE in names:
                found.append(node.value)
    if len(found) != 1:
        raise DataError(
            f"{_where(origin)}: expected one dict literal `{BRIGHT_VARIABLE} = {{...}}`, "
            f"found {len(found)}"
        )
    try:
        return ast.literal_eval(found[0])
    except ValueError as exc:
        raise DataError(
            f"{_where(origin)}: `{BRIGHT_VARIABLE}` is not a literal of strings ({exc})"
        ) from exc


def read_text(path: str | os.PathLike, origin: str | None = None) -> str:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{_where(origin or path)}: no such file {str(path)!r}")
    return path.read_text(encoding="utf-8")


def check_file(kind: str, path: str | os.PathLike, origin: str | None = None) -> None:
    """Parse an authors' file of ``kind`` (:data:`KINDS`): a malformed one is a DataError."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of authors' file {kind!r} (one of {KINDS})")
    parse = parse_task_prompts if kind == "authors" else parse_bright_instructions
    parse(read_text(path, origin), origin or str(path))


@dataclass(frozen=True)
class AuthorsInstructions(InstructionLookup):
    """The authors' per-task (and BRIGHT per-domain) instructions over a fallback prompts file."""

    tasks: dict[str, str]
    fallback: Instructions
    default: str | None = None
    bright: dict[str, str] = field(default_factory=dict)
    unlisted: str = DEFAULT_UNLISTED
    origin: str | None = None
    sha256: str | None = None
    bright_origin: str | None = None
    bright_sha256: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unlisted not in UNLISTED:
            raise ValueError(f"unlisted must be one of {UNLISTED}, got {self.unlisted!r}")

    @property
    def template(self) -> str:  # type: ignore[override]
        return self.fallback.template

    @classmethod
    def from_files(
        cls,
        *,
        fallback: Instructions,
        authors: str | os.PathLike,
        authors_origin: str | None = None,
        authors_bright: str | os.PathLike | None = None,
        authors_bright_origin: str | None = None,
        unlisted: str = DEFAULT_UNLISTED,
    ) -> AuthorsInstructions:
        """Read the authors' files (``*_origin``: where they came from, a URL or the path; by
        default the path)."""
        origin = authors_origin or str(authors)
        tasks, default, notes = parse_task_prompts(read_text(authors, origin), origin)
        bright, bright_origin, bright_sha = {}, None, None
        if authors_bright:
            bright_origin = authors_bright_origin or str(authors_bright)
            bright = parse_bright_instructions(
                read_text(authors_bright, bright_origin), bright_origin
            )
            bright_sha = file_sha256(authors_bright)
        log.info(
            "authors' instructions: %d tasks%s from %s; %d BRIGHT domains from %s; fallback %s",
            len(tasks),
            " and a default" if default else ", no default",
            origin,
            len(bright),
            bright_origin,
            fallback.path,
        )
        return cls(
            tasks=tasks,
            fallback=fallback,
            default=default,
            bright=bright,
            unlisted=unlisted,
            origin=origin,
            sha256=file_sha256(authors),
            bright_origin=bright_origin,
            bright_sha256=bright_sha,
            notes=notes,
        )

    def resolve(
        self, task: str, task_type: str | None = None, subset: str | None = None
    ) -> Resolved:
        if task == BRIGHT_TASK and subset in self.bright:
            return Resolved(
                self.bright[subset], "authors_bright", self.bright_origin, self.bright_sha256
            )
        if task in self.tasks:
            return Resolved(
                self.tasks[task], "authors_task", self.origin, self.sha256, self.notes.get(task, "")
            )
        # the default of task_prompts.json is what their evaluate_mteb.py gives an unlisted
        # task; BRIGHT never went through it (evaluate_bright.py has its own instructions)
        if task != BRIGHT_TASK and self.unlisted == "authors_default" and self.default:
            return Resolved(self.default, "authors_default", self.origin, self.sha256)
        found = self.fallback.resolve(task, task_type, subset)
        if task == BRIGHT_TASK:
            why = f"domain {subset!r} not in the authors' BRIGHT instructions"
        else:
            why = "not in the authors' file" + ("" if self.default else ", which has no default")
        return Resolved(found.instruction, found.source, found.origin, found.sha256, why)

    def describe(self) -> str:
        bright = f"; BRIGHT domains from `{self.bright_origin}`" if self.bright_origin else ""
        return (
            f"the authors' per-task instructions (`{self.origin}`{bright}); tasks they lack: "
            + (
                "the file's default"
                if self.unlisted == "authors_default" and self.default
                else f"{self.fallback.describe()}"
            )
        )
