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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..data.contrastive import DEFAULT_TEMPLATE  # the authors' query template, shared with training
from ..errors import ConfigError

__all__ = ["DEFAULT_TEMPLATE", "Instructions"]


@dataclass(frozen=True)
class Instructions:
    """Per-task instructions with a default, and the template that wraps them."""

    default: str = ""
    tasks: dict[str, str | dict[str, str]] = field(default_factory=dict)
    task_types: dict[str, str] = field(default_factory=dict)
    template: str = DEFAULT_TEMPLATE
    #: the prompts file these were read from (None: built in code); errors name it
    path: str | None = field(default=None, compare=False, repr=False)

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
        )

    def instruction(
        self, task: str, task_type: str | None = None, subset: str | None = None
    ) -> str:
        """The raw instruction for a task (and subset), following the lookup order above."""
        entry = self.tasks.get(task)
        if isinstance(entry, dict):
            if subset is not None and subset in entry:
                return entry[subset]
            if "default" in entry:
                return entry["default"]
        elif entry:
            return entry
        if task_type and self.task_types.get(task_type):
            return self.task_types[task_type]
        return self.default

    def prefix(self, task: str, task_type: str | None = None, subset: str | None = None) -> str:
        """The text put before a query: the formatted instruction, or ``""`` when there is none."""
        text = self.instruction(task, task_type, subset)
        return self.template.format(instruction=text) if text else ""
