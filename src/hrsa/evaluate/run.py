"""One evaluation run: a model on one benchmark through ``mteb.evaluate``, then the tidy CSV.

Results go to an explicit ``mteb.ResultCache`` (mteb's own JSON format); the tidy CSV has one row
per (task, subset) of each task's *first* evaluation split - the scores the authors averaged:
``benchmark, task, subset, main_score, task_type, split, status``. ``status`` is ``ok`` or says
why ``main_score`` is empty (``missing_result``: no result file; ``missing_subset``: the file
lacks the subset; ``unreadable``: the file does not parse). Nothing is silently dropped: the
aggregation (:mod:`hrsa.evaluate.aggregate`) refuses to average over incomplete rows.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..atomic import atomic_path
from ..config import schema_default
from ..errors import ConfigError, HRSAError
from .names import LOCAL_BENCHMARK

log = logging.getLogger("hrsa.evaluate.run")

#: mteb's own seed (classification sub-sampling, clustering bootstrap), as the authors fixed it
#: (the schema's ``evaluation.mteb_seed``).
MTEB_SEED = schema_default("evaluation.mteb_seed")
TIDY_COLUMNS = ["benchmark", "task", "subset", "main_score", "task_type", "split", "status"]


class IncompleteResultsError(HRSAError):
    """Some tasks or subsets of an evaluation have no score (the message lists them)."""


def reseed(task, seed: int) -> None:
    """Give an mteb task another seed (mteb seeds tasks at construction, with 42)."""
    import random

    import numpy as np

    task.seed = seed
    task.rng_state, task.np_rng = random.Random(seed), np.random.default_rng(seed)


def benchmark_tasks(benchmark: str, task_names: list[str] | None = None, seed: int = MTEB_SEED):
    """The tasks of a benchmark (``HRSA-Local`` or any mteb benchmark name), optionally restricted.

    Unknown names in ``task_names`` are a :class:`ConfigError` naming them.
    """
    if benchmark == LOCAL_BENCHMARK:
        from .local_tasks import local_benchmark

        tasks = list(local_benchmark().tasks)
    else:
        import mteb

        try:
            tasks = list(mteb.get_benchmark(benchmark).tasks)
        except KeyError as exc:
            raise ConfigError(
                f"config key evaluation.benchmarks: unknown benchmark {benchmark!r}"
            ) from exc
    if task_names:
        by_name = {t.metadata.name: t for t in tasks}
        unknown = [n for n in task_names if n not in by_name]
        if unknown:
            raise ConfigError(
                f"config key evaluation.tasks.{benchmark}: {unknown} not in the benchmark "
                f"(it has {sorted(by_name)[:20]}{' ...' if len(by_name) > 20 else ''})"
            )
        tasks = [by_name[n] for n in task_names]
    for task in tasks:
        reseed(task, seed)
    return tasks


def tidy_scores(cache, model_meta, tasks, benchmark: str) -> pd.DataFrame:
    """One row per (task, subset) of the first split, read back from the result cache."""
    from mteb.results.task_result import TaskResult

    rows = []
    for task in tasks:
        name, task_type = task.metadata.name, task.metadata.type
        split = task.eval_splits[0]
        path = Path(cache.get_task_result_path(task_name=name, model_name=model_meta))
        base = {"benchmark": benchmark, "task": name, "task_type": task_type, "split": split}
        if not path.is_file():
            rows += [
                {**base, "subset": s, "main_score": math.nan, "status": "missing_result"}
                for s in task.hf_subsets
            ]
            continue
        try:
            result = TaskResult.from_disk(path)
        except Exception as exc:  # a truncated or hand-edited file
            log.error("cannot read %s: %s", path, exc)
            rows += [
                {**base, "subset": s, "main_score": math.nan, "status": "unreadable"}
                for s in task.hf_subsets
            ]
            continue
        found = {e.get("hf_subset"): e.get("main_score") for e in result.scores.get(split, [])}
        for subset in task.hf_subsets:
            score = found.get(subset)
            ok = score is not None and not math.isnan(float(score))
            rows.append(
                {
                    **base,
                    "subset": subset,
                    "main_score": float(score) if ok else math.nan,
                    "status": "ok" if ok else "missing_subset",
                }
            )
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def instruction_table(encoder, tasks, benchmark: str) -> pd.DataFrame:
    """What every (task, subset) of a run gets (:meth:`InstructionMeanPoolEncoder.
    instruction_rows`): columns :data:`~hrsa.evaluate.instructions.INSTRUCTION_COLUMNS`."""
    from .instructions import INSTRUCTION_COLUMNS

    return pd.DataFrame(encoder.instruction_rows(tasks, benchmark), columns=INSTRUCTION_COLUMNS)


def log_instruction_sources(table: pd.DataFrame) -> None:
    """Log how many tasks each source gave their instruction and, when the authors' files are
    used, every task (and subsets) whose instruction is not its own entry there - the files'
    default or this project's fallback - with why and which instruction: one line per task."""
    if table.empty:
        return
    counts = table.drop_duplicates(["task", "source"])["source"].value_counts().to_dict()
    log.info("instruction sources (tasks): %s", counts)
    if not table["source"].str.startswith("authors").any():
        return
    own = table["source"].isin(["authors_task", "authors_bright"])
    n_subsets = table.groupby("task")["subset"].size()
    for (task, source, instruction), rows in table[~own].groupby(
        ["task", "source", "instruction"], sort=False
    ):
        subsets = list(rows["subset"])
        which = "" if len(subsets) == n_subsets[task] else f" [{', '.join(subsets)}]"
        note = rows["note"].iloc[0]
        log.log(
            logging.INFO if source == "authors_default" else logging.WARNING,
            "%s%s: %s%s from %s: %r",
            task,
            which,
            source,
            f" ({note})" if note else "",
            rows["origin"].iloc[0] or "-",
            instruction,
        )


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a CSV atomically (temporary sibling, then rename)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def evaluate_benchmark(
    source: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike,
    scores_csv: str | os.PathLike,
    benchmark: str,
    model_name: str,
    revision: str | None = None,
    tasks: list[str] | None = None,
    prompts: str | os.PathLike | None = None,
    authors: Mapping | None = None,
    instructions_csv: str | os.PathLike | None = None,
    batch_size: int = schema_default("evaluation.batch_size"),
    max_length: int = schema_default("evaluation.max_length"),
    dtype: str = schema_default("evaluation.dtype"),
    device: str = schema_default("device"),
    seed: int = MTEB_SEED,
    allow_missing: bool = schema_default("evaluation.allow_missing"),
) -> pd.DataFrame:
    """Evaluate one model on one benchmark; write mteb's results and the tidy CSV; return the CSV.

    ``prompts`` is the prompts file (None: no instructions at all); ``authors`` the authors'
    instruction files over it (:func:`hrsa.evaluate.instructions.load_instructions`). What every
    (task, subset) got and where it came from goes to ``instructions_csv`` (written before the
    evaluation; :func:`instruction_table`), and each task that falls back to the prompts file is
    logged. Every task is attempted even if one fails; afterwards missing scores raise
    :class:`IncompleteResultsError` unless ``allow_missing`` (the CSV is written first either
    way, with the gaps marked).
    """
    import mteb

    from .encoder import InstructionMeanPoolEncoder
    from .instructions import load_instructions

    t0 = time.perf_counter()
    task_objs = benchmark_tasks(benchmark, tasks, seed)
    instructions = load_instructions(prompts, authors)
    encoder = InstructionMeanPoolEncoder(
        source,
        name=model_name,
        revision=revision,
        instructions=instructions,
        batch_size=batch_size,
        max_length=max_length,
        dtype=dtype,
        device=device,
    )
    if instructions is not None:
        log.info("instructions: %s", instructions.describe())
    table = instruction_table(encoder, task_objs, benchmark)
    log_instruction_sources(table)
    if instructions_csv is not None:
        write_csv(table, instructions_csv)
    cache = mteb.ResultCache(cache_path=str(cache_dir))
    log.info("evaluating %s (%s) on %s: %d tasks", model_name, source, benchmark, len(task_objs))
    mteb.evaluate(
        encoder,
        task_objs,
        cache=cache,
        encode_kwargs={"batch_size": batch_size},
        raise_error=False,
        show_progress_bar=False,
        co2_tracker=False,
    )
    df = tidy_scores(cache, encoder.mteb_model_meta, task_objs, benchmark)
    write_csv(df, scores_csv)
    log.info("%s on %s: %d rows, %.1f s", model_name, benchmark, len(df), time.perf_counter() - t0)
    bad = df[df["status"] != "ok"]
    if len(bad) and not allow_missing:
        listed = ", ".join(f"{r.task}/{r.subset} ({r.status})" for r in bad.head(20).itertuples())
        raise IncompleteResultsError(
            f"{model_name} on {benchmark}: {len(bad)} scores missing: {listed}"
        )
    return df


def prefetch_benchmark(benchmark: str, task_names: list[str] | None = None) -> list[str]:
    """Download a benchmark's datasets into the Hugging Face cache (run where there is internet).

    Evaluation jobs on offline compute nodes then load them with ``HF_DATASETS_OFFLINE=1``.
    Returns the names of the tasks whose data are now cached.
    """
    done = []
    for task in benchmark_tasks(benchmark, task_names):
        task.load_data()
        task.unload_data()
        done.append(task.metadata.name)
        log.info("cached the data of %s", task.metadata.name)
    return done
