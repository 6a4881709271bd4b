"""Instructions for evaluation: which instruction a task gets, and the template around it.

The prompts file (``config/prompts.yaml``) holds::

    template: "Instruct: {instruction}\\nQuery: "   # optional; this is the default
    default: "Retrieve semantically similar text."  # for tasks with no entry below
    task_types: {Retrieval: "...", STS: "...", ...} # optional, by mteb task type
    tasks:
      SomeTask: "one instruction for every subset"
      BrightRetrieval:                              # or one per subset (hf_subset)
        biology: "..."
        default: "..."                              # optional fallback for other subsets

Lookup order for (task, subset): ``tasks[task][subset]``, ``tasks[task]["default"]`` or the
task's single string, ``task_types[type]``, ``default``. Only queries (and the texts of symmetric
tasks such as STS, classification, clustering) get the formatted instruction; retrieval documents
never do - that rule lives in :class:`hrsa.evaluate.encoder.InstructionMeanPoolEncoder`.

Config key ``evaluation.prompts`` is either such a file or a mapping naming the authors' published
instructions (:mod:`hrsa.evaluate.authors`) with this file as the fallback;
:func:`load_instructions` builds either. Every lookup can say where its instruction came from
(:meth:`Instructions.resolve` -> :class:`Resolved`, its ``source`` one of :data:`SOURCES`): the
evaluation writes that next to the scores and the report lists it per task.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..data.contrastive import DEFAULT_TEMPLATE  # the authors' query template, shared with training
from ..errors import ConfigError

__all__ = [
    "DEFAULT_TEMPLATE",
    "INSTRUCTION_COLUMNS",
    "SOURCES",
    "InstructionLookup",
    "SOURCE_LABELS",
    "Instructions",
    "Resolved",
    "load_instructions",
]

#: Where an instruction came from (``source`` in the instruction tables), and what that means.
SOURCES = {
    "authors_task": "the authors' task_prompts.json: the task's own entry",
    "authors_bright": "the authors' evaluate_bright.py: the BRIGHT domain's instruction",
    "authors_default": "the authors' task_prompts.json: its default (the task has no entry)",
    "project_task": "this project's prompts file: the task's entry",
    "project_task_type": "this project's prompts file: the task type's fallback",
    "project_default": "this project's prompts file: its default",
    "model_prompt": "the evaluated model's own query prompt (its sentence-transformers files)",
    "none": "no instruction",
}
#: Short names of the sources, for notes under tables.
SOURCE_LABELS = {
    "authors_task": "the authors' per-task instructions",
    "authors_bright": "the authors' per-domain BRIGHT instructions",
    "authors_default": "the authors' default instruction (task not in their file)",
    "project_task": "this project's per-task instructions",
    "project_task_type": "this project's task-type fallbacks",
    "project_default": "this project's default instruction",
    "model_prompt": "the evaluated model's own query prompt",
    "none": "no instruction",
}
#: Columns of an evaluation run's instruction table (``{bench}.instructions.csv``): one row per
#: (task, subset) of the run, what queries and documents got and where it came from.
INSTRUCTION_COLUMNS = [
    "benchmark",
    "task",
    "subset",
    "task_type",
    "instruction",
    "source",
    "origin",
    "sha256",
    "template",
    "document_instruction",
    "note",
]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Resolved:
    """One lookup's instruction and its provenance: ``source`` (a key of :data:`SOURCES`),
    ``origin`` (the file or URL it was read from; None when built in code), that file's
    ``sha256`` and a ``note`` (e.g. how a query/passage entry was read)."""

    instruction: str
    source: str
    origin: str | None = None
    sha256: str | None = None
    note: str = ""


class InstructionLookup:
    """What the encoder asks of an instruction source: :meth:`resolve` and ``template``."""

    template: str = DEFAULT_TEMPLATE

    def resolve(self, task: str, task_type: str | None = None, subset: str | None = None):
        raise NotImplementedError

    def instruction(
        self, task: str, task_type: str | None = None, subset: str | None = None
    ) -> str:
        """The raw instruction for a task (and subset)."""
        return self.resolve(task, task_type, subset).instruction

    def prefix(self, task: str, task_type: str | None = None, subset: str | None = None) -> str:
        """The text put before a query: the formatted instruction, or ``""`` when there is none."""
        text = self.instruction(task, task_type, subset)
        return self.template.format(instruction=text) if text else ""

    def describe(self) -> str:
        """One line naming the instruction set (logs, tables)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Instructions(InstructionLookup):
    """Per-task instructions with a default, and the template that wraps them."""

    default: str = ""
    tasks: dict[str, str | dict[str, str]] = field(default_factory=dict)
    task_types: dict[str, str] = field(default_factory=dict)
    template: str = DEFAULT_TEMPLATE
    #: the prompts file these were read from (None: built in code); errors name it
    path: str | None = field(default=None, compare=False, repr=False)
    #: sha256 of that file (None: built in code)
    sha256: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = "Instructions" if self.path is None else f"prompts file {self.path!r}"
        if "{instruction}" not in self.template:
            raise ConfigError(f"{where}: template {self.template!r} must contain '{{instruction}}'")
        for task, value in self.tasks.items():
            if not isinstance(value, str | dict):
                raise ConfigError(f"{where}: tasks.{task}: expected a string or a map of subsets")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Instructions:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"prompts file {str(path)!r} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        unknown = set(data) - {"default", "tasks", "task_types", "template"}
        if unknown:
            raise ConfigError(f"prompts file {str(path)!r}: unknown keys {sorted(unknown)}")
        return cls(
            default=data.get("default") or "",
            tasks=dict(data.get("tasks") or {}),
            task_types=dict(data.get("task_types") or {}),
            template=data.get("template") or DEFAULT_TEMPLATE,
            path=str(path),
            sha256=file_sha256(path),
        )

    def resolve(
        self, task: str, task_type: str | None = None, subset: str | None = None
    ) -> Resolved:
        """The instruction for a task (and subset), following the lookup order above, and which
        entry gave it (``project_task``, ``project_task_type``, ``project_default`` or
        ``none``)."""
        entry = self.tasks.get(task)
        text, source = "", "none"
        if isinstance(entry, dict):
            if subset is not None and subset in entry:
                text, source = entry[subset], "project_task"
            elif "default" in entry:
                text, source = entry["default"], "project_task"
        elif entry:
            text, source = entry, "project_task"
        if not text and task_type and self.task_types.get(task_type):
            text, source = self.task_types[task_type], "project_task_type"
        if not text and self.default:
            text, source = self.default, "project_default"
        if not text:
            source = "none"
        return Resolved(text, source, self.path, self.sha256)

    def describe(self) -> str:
        where = f"`{self.path}`" if self.path else "built in code"
        return f"this project's prompts file ({where})"


def load_instructions(
    prompts: str | os.PathLike | None, authors: Mapping | None = None
) -> InstructionLookup | None:
    """The instructions of an evaluation run: ``prompts`` (this project's prompts file; None: no
    instructions at all) alone, or, with ``authors`` (the plan's
    ``Plan.eval_instruction_settings``: the authors' files, where they came from, ``unlisted``),
    the authors' published instructions with ``prompts`` as the fallback
    (:class:`hrsa.evaluate.authors.AuthorsInstructions`)."""
    if prompts is None:
        if authors:
            raise ValueError("the authors' instructions need a fallback prompts file")
        return None
    fallback = Instructions.from_yaml(prompts)
    if not authors:
        return fallback
    from .authors import AuthorsInstructions

    return AuthorsInstructions.from_files(fallback=fallback, **authors)
