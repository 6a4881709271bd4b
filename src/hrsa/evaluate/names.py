"""Names used in result paths: benchmark slugs and the mteb model name of an evaluated model."""

from __future__ import annotations

import re

#: The offline benchmark of the default config (tasks in :mod:`hrsa.evaluate.local_tasks`).
LOCAL_BENCHMARK = "HRSA-Local"

#: Stages an evaluation run can score: the trained embedding model, its backbone LLM, or the
#: LoRA-trained embedding model (training.lora, Table 6).
EVALUATION_STAGES = ("emb", "backbone", "lora")


def benchmark_slug(name: str) -> str:
    """A filesystem-safe slug of a benchmark name.

    Runs of characters other than letters, digits, ``.`` and ``-`` become one ``_``; leading and
    trailing ``_`` are dropped: ``"MTEB(Multilingual, v2)"`` -> ``"MTEB_Multilingual_v2"``,
    ``"HRSA-Local"`` -> ``"HRSA-Local"``.
    """
    slug = re.sub(r"[^A-Za-z0-9.\-]+", "_", name).strip("_")
    if not slug:
        raise ValueError(f"benchmark name {name!r} has no letters or digits to make a slug from")
    return slug


def slugs_to_names(names: list[str]) -> dict[str, str]:
    """``{slug: name}`` for configured benchmark names; two names with one slug are an error."""
    out: dict[str, str] = {}
    for name in names:
        slug = benchmark_slug(name)
        if slug in out and out[slug] != name:
            raise ValueError(f"benchmarks {out[slug]!r} and {name!r} have the same slug {slug!r}")
        out[slug] = name
    return out


def evaluated_model_name(model: str, stage: str, seed: int | str) -> str:
    """The ``org/name`` mteb files results under, e.g. ``hrsa/tiny-base-emb-seed0``."""
    return f"hrsa/{model}-{stage}-seed{seed}"
