"""Prompts 1-4 of the paper's Appendix C, read from a YAML file and rendered into chat messages.

The file (``cot_generation.prompts``, by default ``config/cot_prompts.yaml``) has two sections,
``generator`` and ``judge``, each with a ``system`` and a ``user`` template. The generator's user
template has the placeholder ``{problem}``; the judge's has ``{problem}`` and ``{answer}``. The
placeholders are substituted verbatim (a problem's own braces, e.g. LaTeX, are left alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import DataError

#: the placeholders each role's templates may (user: must) use
PLACEHOLDERS = {"generator": ("problem",), "judge": ("problem", "answer")}
ROLES = tuple(PLACEHOLDERS)


@dataclass(frozen=True)
class PromptPair:
    """The system and user templates of one role (``generator`` or ``judge``)."""

    role: str
    system: str
    user: str

    def messages(self, **values: str) -> list[dict]:
        """The chat messages: the system prompt, then the user template with ``values`` put in."""
        user = self.user
        for name in PLACEHOLDERS[self.role]:
            user = user.replace("{" + name + "}", str(values[name]))
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def _placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def load_prompts(path: str | os.PathLike) -> dict[str, PromptPair]:
    """The prompt pairs of ``path`` by role; a missing section, key or placeholder, or an unknown
    one, is a :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"the CoT prompts file {path} does not exist (cot_generation.prompts)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise DataError(f"the CoT prompts file {path}: expected a mapping {{generator, judge}}")
    unknown = sorted(set(data) - set(ROLES))
    if unknown:
        raise DataError(f"the CoT prompts file {path}: unknown sections {unknown}")
    pairs = {}
    for role in ROLES:
        section = data.get(role)
        if not isinstance(section, Mapping) or set(section) != {"system", "user"}:
            raise DataError(
                f"the CoT prompts file {path}: section {role!r} needs exactly `system` and `user`"
            )
        for part in ("system", "user"):
            if not isinstance(section[part], str) or not section[part].strip():
                raise DataError(f"the CoT prompts file {path}: {role}.{part} is not a text")
            try:
                used = _placeholders(section[part])
            except ValueError as exc:
                raise DataError(
                    f"the CoT prompts file {path}: {role}.{part} has unbalanced braces ({exc})"
                ) from exc
            allowed = PLACEHOLDERS[role] if part == "user" else ()
            stray = sorted(set(used) - set(allowed))
            if stray:
                raise DataError(
                    f"the CoT prompts file {path}: {role}.{part} uses unknown placeholders "
                    f"{stray} (allowed: {list(allowed)})"
                )
            if part == "user":
                missing = [p for p in PLACEHOLDERS[role] if p not in used]
                if missing:
                    raise DataError(
                        f"the CoT prompts file {path}: {role}.user lacks the placeholders {missing}"
                    )
        pairs[role] = PromptPair(role, section["system"], section["user"])
    return pairs


def digest(value) -> str:
    """sha256 of the canonical JSON of ``value`` (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompts_hash(pairs: Mapping[str, PromptPair]) -> str:
    """The hash of the templates themselves (the dataset card records it)."""
    return digest({r: {"system": p.system, "user": p.user} for r, p in sorted(pairs.items())})
