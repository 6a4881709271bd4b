"""Benchmark means and the paper's Table 1 from the tidy score CSVs (pandas only, no mteb).

Score of one (model, stage, seed, benchmark), as the authors computed it: each task's
``main_score`` averaged over the subsets of its first split (the tidy CSV holds only that split),
then the mean over tasks (``mean_task``) and the mean over task types of the per-type task means
(``mean_task_type``). A task with a missing subset, a CSV lacking a (task, subset) that another
CSV of the same benchmark has, or a missing CSV makes that benchmark score *incomplete*: it is
reported and left out, never averaged over.

Table 1, per pair and benchmark, over the evaluation seeds where both models are complete:
``base_mean``, ``reasoning_mean``, ``delta_mean`` = mean of the per-seed differences
(reasoning - base), ``delta_std`` = their sample standard deviation (ddof=1; NaN with one seed),
``n_seeds``, and which embedding model each member is (``base_embedding``,
``reasoning_embedding``: ``trained``, ``published`` or, in the backbone table, ``backbone``).
CSVs keep mteb's scale (main scores in [0, 1]); the Markdown shows points (x 100) as the paper
does.

A published checkpoint (config key ``models.<key>.embedding_source``) is one model, evaluated
once and filed under the first evaluation seed: its score stands for every seed of its partner,
so ``delta_std`` is then the spread of the trained member alone (and NaN when both members are
published: one seed). The Markdown marks its name with † and lists the sources.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..config import schema_default
from ..errors import DataError
from .instructions import INSTRUCTION_COLUMNS, SOURCE_LABELS, SOURCES

#: the score Table 1 averages by default (``evaluation.table1_score``)
TABLE1_SCORE = schema_default("evaluation.table1_score")
REQUIRED_COLUMNS = ["benchmark", "task", "subset", "main_score"]
TABLE1_COLUMNS = [
    "pair",
    "family",
    "benchmark",
    "base_mean",
    "reasoning_mean",
    "delta_mean",
    "delta_std",
    "n_seeds",
]
#: after TABLE1_COLUMNS in table1.csv: which embedding model each member is
TABLE1_EMBEDDING_COLUMNS = ["base_embedding", "reasoning_embedding"]
#: what ``base_embedding`` / ``reasoning_embedding`` say
TRAINED, PUBLISHED, BACKBONE = "trained", "published", "backbone"
PUBLISHED_MARK = "†"
SUMMARY_COLUMNS = [
    "model",
    "stage",
    "seed",
    "benchmark",
    "mean_task",
    "mean_task_type",
    "n_tasks",
    "complete",
    "problem",
]
SCALE = 100.0  # Markdown only
DELTA_DDOF = 1


#: columns of the gathered instruction table (``results/mteb/instructions.csv``): a run's
#: columns, then how many runs gave that row and which (``model/stage/seed``, ``; ``-separated)
INSTRUCTIONS_COLUMNS = [*INSTRUCTION_COLUMNS, "n_runs", "runs"]


@dataclass(frozen=True)
class ScoreFile:
    """Where a file of one evaluation run is (its tidy scores, or its instruction table), and
    what it is of."""

    model: str
    stage: str
    seed: int
    benchmark: str
    path: str | os.PathLike


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """Read a tidy score CSV; a missing column is a :class:`DataError` naming the file."""
    df = pd.read_csv(
        path, keep_default_na=False, na_values=[""], dtype={"subset": str, "task": str}
    )
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing} (has {list(df.columns)})")
    if "task_type" not in df.columns:
        df["task_type"] = df["task"]  # no types: every task is its own type
    if "status" not in df.columns:
        df["status"] = np.where(df["main_score"].isna(), "missing", "ok")
    df["main_score"] = pd.to_numeric(df["main_score"], errors="coerce")
    return df


def task_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Per task: mean main score over its subsets; ``complete`` False if any subset has no score."""
    ok = df["main_score"].notna() & (df["status"] == "ok")
    grouped = df.assign(_ok=ok).groupby("task", sort=False)
    out = grouped.agg(
        task_type=("task_type", "first"),
        main_score=("main_score", "mean"),
        n_subsets=("subset", "size"),
        complete=("_ok", "all"),
    )
    out.loc[~out["complete"], "main_score"] = math.nan
    return out.reset_index()


def benchmark_score(df: pd.DataFrame) -> dict:
    """``mean_task``, ``mean_task_type`` of one tidy CSV, or NaN and the problem."""
    tasks = task_scores(df)
    incomplete = tasks.loc[~tasks["complete"], "task"].tolist()
    if incomplete or tasks.empty:
        problem = f"incomplete tasks: {', '.join(incomplete)}" if incomplete else "no tasks"
        return {
            "mean_task": math.nan,
            "mean_task_type": math.nan,
            "n_tasks": len(tasks),
            "complete": False,
            "problem": problem,
        }
    by_type = tasks.groupby("task_type")["main_score"].mean()
    return {
        "mean_task": float(tasks["main_score"].mean()),
        "mean_task_type": float(by_type.mean()),
        "n_tasks": len(tasks),
        "complete": True,
        "problem": "",
    }


def summarize(files: list[ScoreFile]) -> pd.DataFrame:
    """One row per score file: its benchmark means, or why it is incomplete.

    A (task, subset) present in some CSV of a benchmark but absent from another makes the latter
    partial, so a CSV truncated by hand or by an older run cannot pass as complete.
    """
    frames: dict[int, pd.DataFrame] = {}
    for i, f in enumerate(files):
        if Path(f.path).is_file():
            frames[i] = read_scores(f.path)
    expected: dict[str, set] = {}
    for i, df in frames.items():
        expected.setdefault(files[i].benchmark, set()).update(
            zip(df["task"], df["subset"], strict=True)
        )
    rows = []
    for i, f in enumerate(files):
        base = {"model": f.model, "stage": f.stage, "seed": int(f.seed), "benchmark": f.benchmark}
        if i not in frames:
            rows.append(
                {
                    **base,
                    "mean_task": math.nan,
                    "mean_task_type": math.nan,
                    "n_tasks": 0,
                    "complete": False,
                    "problem": f"missing file {f.path}",
                }
            )
            continue
        df = frames[i]
        lacking = expected[f.benchmark] - set(zip(df["task"], df["subset"], strict=True))
        score = benchmark_score(df)
        if lacking:
            listed = ", ".join(f"{t}/{s}" for t, s in sorted(lacking)[:10])
            score.update(
                mean_task=math.nan,
                mean_task_type=math.nan,
                complete=False,
                problem=f"partial file {f.path}: lacks {listed}",
            )
        elif not score["complete"]:
            score["problem"] = f"{f.path}: {score['problem']}"
        rows.append({**base, **score})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def read_instruction_table(path: str | os.PathLike) -> pd.DataFrame:
    """An instruction table (a run's, or the gathered one): every cell a string, empty for none;
    a missing column is a :class:`DataError` naming the file."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in INSTRUCTION_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing} (has {list(df.columns)})")
    return df


def gather_instructions(files: list[ScoreFile]) -> tuple[pd.DataFrame, list[str]]:
    """The instruction tables of the runs in one frame: one row per distinct (task, subset,
    instruction, source, ...) with the runs that gave it (:data:`INSTRUCTIONS_COLUMNS`), and the
    problems (missing files)."""
    frames, problems = [], []
    for f in files:
        if not Path(f.path).is_file():
            problems.append(f"missing instruction table {f.path}")
            continue
        df = read_instruction_table(f.path)[INSTRUCTION_COLUMNS]
        frames.append(df.assign(run=f"{f.model}/{f.stage}/seed{int(f.seed)}"))
    if not frames:
        return pd.DataFrame(columns=INSTRUCTIONS_COLUMNS), problems
    every = pd.concat(frames, ignore_index=True)
    grouped = every.groupby(INSTRUCTION_COLUMNS, sort=False, dropna=False)["run"]
    out = grouped.agg(n_runs="size", runs=lambda r: "; ".join(sorted(set(r)))).reset_index()
    return out[INSTRUCTIONS_COLUMNS], problems


def instruction_set_note(
    instructions: pd.DataFrame | None, appendix: str | None = "instructions.md"
) -> str:
    """One sentence under Table 1 saying which instruction set produced it: per source, how many
    tasks got their instruction there and from which files (sha256), and where every task's
    instruction is listed (``appendix``; None: not said); ``""`` without an instruction table."""
    if instructions is None or instructions.empty:
        return ""
    parts = []
    for source in SOURCES:
        rows = instructions[instructions["source"] == source]
        if rows.empty:
            continue
        n_tasks = len(rows.drop_duplicates(["benchmark", "task"]))
        files = rows.drop_duplicates(["origin"])
        where = ", ".join(
            f"`{r.origin}`" + (f" (sha256 {r.sha256[:12]})" if r.sha256 else "")
            for r in files.itertuples()
            if r.origin
        )
        domains = len(rows.drop_duplicates(["benchmark", "task", "subset"]))
        parts.append(
            f"{SOURCE_LABELS[source]} for {n_tasks} task{'s' if n_tasks != 1 else ''}"
            + (f" ({domains} domains)" if source == "authors_bright" else "")
            + (f" from {where}" if where else "")
        )
    documents = instructions["document_instruction"].fillna("").astype(str).str.len() > 0
    where = (
        "on queries only; documents get none"
        if not documents.any()
        else "on queries; documents get only the evaluated models' own document prompts"
    )
    return (
        f"Instructions ({where}): "
        + "; ".join(parts)
        + "."
        + (f" Every task's instruction: `{appendix}`." if appendix else "")
    )


def sources_by_benchmark(instructions: pd.DataFrame | None) -> dict[str, str]:
    """Benchmark -> how many of its tasks each source instructed (``authors_task: 120 tasks;
    project_task_type: 3 tasks``), in :data:`SOURCES` order; empty without a table."""
    if instructions is None or instructions.empty:
        return {}
    out = {}
    per_task = instructions.drop_duplicates(["benchmark", "task", "source"])
    for bench, rows in per_task.groupby("benchmark", sort=False):
        counts = rows["source"].value_counts()
        out[bench] = "; ".join(
            f"{source}: {counts[source]} task{'s' if counts[source] != 1 else ''}"
            for source in SOURCES
            if source in counts
        )
    return out


def table1(
    summary: pd.DataFrame,
    pairs: dict[str, dict],
    benchmarks: list[str],
    *,
    stage: str = "emb",
    score: str = TABLE1_SCORE,
    published: Collection[str] = (),
) -> tuple[pd.DataFrame, list[str]]:
    """Table 1 rows (pair x benchmark) and the list of problems (left out seeds, with reasons).

    ``published``: model keys whose embedding model is a published checkpoint (evaluated once);
    at ``stage="emb"`` its one result stands for every seed of the other member.
    """
    if score not in ("mean_task", "mean_task_type"):
        raise ValueError(f"score must be mean_task or mean_task_type, got {score!r}")
    published = set(published) if stage == "emb" else set()
    rows, problems = [], []
    sub = summary[summary["stage"] == stage]
    for pair, spec in pairs.items():
        for bench in benchmarks:
            cell = sub[sub["benchmark"] == bench]
            base = cell[cell["model"] == spec["base"]].set_index("seed").sort_index()
            reason = cell[cell["model"] == spec["reasoning"]].set_index("seed").sort_index()
            if spec["base"] in published:
                base = _for_every_seed(base, reason.index)
            if spec["reasoning"] in published:
                reason = _for_every_seed(reason, base.index)
            seeds = sorted(set(base.index) | set(reason.index))
            kept = []
            for seed in seeds:
                why = []
                for role, table, model in (
                    ("base", base, spec["base"]),
                    ("reasoning", reason, spec["reasoning"]),
                ):
                    if seed not in table.index:
                        why.append(f"{role} {model} not evaluated")
                    elif not bool(table.at[seed, "complete"]):
                        why.append(f"{role} {model}: {table.at[seed, 'problem']}")
                if why:
                    problems.append(f"{pair} / {bench} / seed {seed} left out: {'; '.join(why)}")
                else:
                    kept.append(seed)
            b = np.array([base.at[s, score] for s in kept], dtype=float)
            r = np.array([reason.at[s, score] for s in kept], dtype=float)
            rows.append(
                {
                    "pair": pair,
                    "family": spec.get("family", ""),
                    "benchmark": bench,
                    "base_mean": float(b.mean()) if len(kept) else math.nan,
                    "reasoning_mean": float(r.mean()) if len(kept) else math.nan,
                    "delta_mean": float((r - b).mean()) if len(kept) else math.nan,
                    "delta_std": float((r - b).std(ddof=DELTA_DDOF))
                    if len(kept) > DELTA_DDOF
                    else math.nan,
                    "n_seeds": len(kept),
                    **{
                        f"{role}_embedding": (
                            BACKBONE
                            if stage == "backbone"
                            else PUBLISHED
                            if spec[role] in published
                            else TRAINED
                        )
                        for role in ("base", "reasoning")
                    },
                }
            )
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS + TABLE1_EMBEDDING_COLUMNS), problems


def _for_every_seed(table: pd.DataFrame, seeds) -> pd.DataFrame:
    """A published model's one evaluation (its first seed) repeated for each of ``seeds``."""
    if table.empty or not len(seeds):
        return table
    one = table.iloc[[0]]
    return pd.concat([one] * len(seeds)).set_axis(list(seeds), axis=0).rename_axis("seed")


def _fmt(x: float, signed: bool = False) -> str:
    """A score in points (x 100), or n/a."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{SCALE * x:+.2f}" if signed else f"{SCALE * x:.2f}"


def table1_markdown(
    table: pd.DataFrame,
    pairs: dict[str, dict],
    benchmarks: list[str],
    *,
    problems: list[str] = (),
    labels: dict[str, str] | None = None,
    backbone: pd.DataFrame | None = None,
    score: str = TABLE1_SCORE,
    published: Mapping[str, str] | None = None,
    instructions: pd.DataFrame | None = None,
) -> str:
    """The paper's layout: one row per pair (SFT first), base / reasoning / delta (std) per
    benchmark. ``published`` (model key -> source) marks published checkpoints with †;
    ``instructions`` (:func:`gather_instructions`) adds which instruction set produced it."""
    labels = labels or {}
    published = dict(published or {})
    what = "mean over tasks" if score == "mean_task" else "mean over task types"
    lines = [
        "# Table 1: mean embedding benchmark performance",
        "",
        f"Scores are main scores x 100 ({what}; each task averaged over the subsets of its first "
        "split), averaged over the evaluation seeds; Δ = reasoning - base, ± its standard "
        "deviation over seeds (n/a with one seed).",
        "",
    ]

    def name(model: str, marked: bool) -> str:
        label = labels.get(model, model)
        return f"{label} {PUBLISHED_MARK}" if marked and model in published else label

    def block(tab: pd.DataFrame, delta_std: bool, marked: bool = True) -> list[str]:
        head = ["Family", "Pair", "Backbones"]
        for bench in benchmarks:
            head += [f"{bench}: base", f"{bench}: reasoning", f"{bench}: Δ (Std)"]
        head.append("seeds")
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        order = sorted(pairs, key=lambda p: (pairs[p].get("family") != "SFT", list(pairs).index(p)))
        for pair in order:
            spec = pairs[pair]
            cells = [
                spec.get("family", ""),
                spec.get("label", pair),
                f"{name(spec['base'], marked)} / {name(spec['reasoning'], marked)}",
            ]
            n = []
            for bench in benchmarks:
                hit = tab[(tab["pair"] == pair) & (tab["benchmark"] == bench)]
                if hit.empty:
                    cells += ["n/a"] * 3
                    continue
                row = hit.iloc[0]
                d = _fmt(row["delta_mean"], signed=True)
                if delta_std:
                    d += f" ± {_fmt(row['delta_std'])}"
                cells += [_fmt(row["base_mean"]), _fmt(row["reasoning_mean"]), d]
                n.append(str(int(row["n_seeds"])))
            cells.append("/".join(sorted(set(n))) or "0")
            out.append("| " + " | ".join(cells) + " |")
        return out

    lines += block(table, delta_std=True)
    shown = {m for spec in pairs.values() for m in (spec["base"], spec["reasoning"])}
    listed = [m for m in published if m in shown]
    if listed:
        lines += [
            "",
            f"{PUBLISHED_MARK} published checkpoint, not trained by this run (evaluated once, "
            "with the pooling and prompts its files declare; its score stands for every seed, "
            "so Std is the spread of the trained member alone): "
            + "; ".join(f"{labels.get(m, m)} = `{published[m]}`" for m in listed)
            + ".",
        ]
    note = instruction_set_note(instructions, appendix="instructions.csv")
    if note:
        lines += ["", note]
    if backbone is not None and not backbone.empty:
        lines += ["", "## Reference: backbones before contrastive training (same pooling)", ""]
        lines += block(backbone, delta_std=False, marked=False)
    if problems:
        lines += ["", "## Left out (missing or partial results)", ""]
        lines += [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def write_table1(
    files: list[ScoreFile],
    *,
    pairs: dict[str, dict],
    benchmarks: list[str],
    table_csv: str | os.PathLike,
    table_md: str | os.PathLike,
    summary_csv: str | os.PathLike,
    backbone_csv: str | os.PathLike | None = None,
    labels: dict[str, str] | None = None,
    score: str = TABLE1_SCORE,
    published: Mapping[str, str] | None = None,
    instruction_files: list[ScoreFile] | None = None,
    instructions_csv: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Summarise every score file and write Table 1 (CSV + Markdown), the backbone reference
    table (same columns; empty when no backbone was evaluated) and the per-run summary.
    ``published``: model key -> source of every published checkpoint (see the module doc).
    ``instruction_files``: the runs' instruction tables, gathered into ``instructions_csv``
    (:func:`gather_instructions`); the Markdown then says which instruction set produced it."""
    instructions, missing = None, []
    if instruction_files is not None:
        instructions, missing = gather_instructions(instruction_files)
        if instructions_csv is not None:
            with atomic_path(instructions_csv) as tmp:
                instructions.to_csv(tmp, index=False)
    summary = summarize(files)
    table, problems = table1(
        summary, pairs, benchmarks, stage="emb", score=score, published=list(published or {})
    )
    backbone = None
    if (summary["stage"] == "backbone").any():
        backbone, more = table1(summary, pairs, benchmarks, stage="backbone", score=score)
        problems += [f"backbone: {p}" for p in more]
    problems += missing
    for df, path in ((summary, summary_csv), (table, table_csv)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
    if backbone_csv is not None:
        empty = pd.DataFrame(columns=TABLE1_COLUMNS + TABLE1_EMBEDDING_COLUMNS)
        (backbone if backbone is not None else empty).to_csv(backbone_csv, index=False)
    Path(table_md).write_text(
        table1_markdown(
            table,
            pairs,
            benchmarks,
            problems=problems,
            labels=labels,
            backbone=backbone,
            score=score,
            published=published,
            instructions=instructions,
        )
    )
    return table, problems
