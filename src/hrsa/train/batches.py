"""Which examples form each training step: single-source global batches, split across processes.

The schedule is a pure function of (dataset sizes, global batch size, max steps, seed), so every
process computes the same one and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import torch

from ..data.contrastive import ContrastiveExample
from ..errors import DataError, config_error
from .embedding import tokenize

log = logging.getLogger("hrsa.train")


@dataclass(frozen=True)
class Batch:
    """One optimizer step: the source dataset and the indices of its examples (global batch)."""

    step: int
    source: str
    indices: tuple[int, ...]


def batch_schedule(
    sizes: dict[str, int],
    *,
    global_batch_size: int,
    max_steps: int,
    seed: int,
) -> list[Batch]:
    """Steps 1..max_steps, each a global batch drawn from a single source dataset.

    Each pass over the data shuffles every source's examples, cuts them into full batches (a
    source's remainder is left for the next pass), and shuffles the batches of all sources
    together, so sources are seen in proportion to their size. Passes repeat until max_steps.
    """
    usable = {s: n for s, n in sorted(sizes.items()) if n >= global_batch_size}
    too_small = sorted(set(sizes) - set(usable))
    if too_small:
        log.warning(
            "sources with fewer examples than one global batch (%d) are not used: %s",
            global_batch_size,
            ", ".join(f"{s} ({sizes[s]})" for s in too_small),
        )
    if not usable:
        raise DataError(
            f"no source dataset has a full global batch of {global_batch_size} examples "
            f"(sizes: {dict(sorted(sizes.items()))}); lower training.global_batch_size or add data"
        )
    schedule: list[Batch] = []
    epoch = 0
    while len(schedule) < max_steps:
        rng = random.Random(f"batches-{seed}-{epoch}")
        batches = []
        for source, n in usable.items():
            order = list(range(n))
            rng.shuffle(order)
            for start in range(0, n - global_batch_size + 1, global_batch_size):
                batches.append((source, tuple(order[start : start + global_batch_size])))
        rng.shuffle(batches)
        for source, indices in batches:
            if len(schedule) == max_steps:
                break
            schedule.append(Batch(len(schedule) + 1, source, indices))
        epoch += 1
    return schedule


def local_slice(batch: Batch, rank: int, world_size: int) -> tuple[int, ...]:
    """This process's contiguous share of a global batch (rank-major, like an all-gather)."""
    if len(batch.indices) % world_size:
        raise config_error(
            "training.global_batch_size",
            f"{len(batch.indices)} is not divisible by {world_size} processes",
        )
    per = len(batch.indices) // world_size
    return batch.indices[rank * per : (rank + 1) * per]


def negatives_for(example: ContrastiveExample, n: int) -> list[str]:
    """Exactly ``n`` hard negatives: the first n, repeating them in order if there are fewer."""
    if n == 0:
        return []
    if not example.negatives:
        raise DataError(f"source {example.source!r}: query {example.query[:60]!r} has no negatives")
    return [example.negatives[i % len(example.negatives)] for i in range(n)]


def collate(
    examples: list[ContrastiveExample],
    tokenizer,
    *,
    num_negatives: int,
    template: str,
    max_length: int,
    exclude_instruction: bool,
) -> list[dict[str, torch.Tensor]]:
    """Feature dicts in the column order the loss expects: queries, positives, negatives 1..n."""
    queries = tokenize(
        tokenizer,
        [ex.query for ex in examples],
        instructions=[ex.instruction for ex in examples],
        template=template,
        max_length=max_length,
        exclude_instruction=exclude_instruction,
    )
    columns = [
        queries,
        tokenize(tokenizer, [ex.positive for ex in examples], max_length=max_length),
    ]
    negatives = [negatives_for(ex, num_negatives) for ex in examples]
    for j in range(num_negatives):
        columns.append(tokenize(tokenizer, [negs[j] for negs in negatives], max_length=max_length))
    return columns
