"""The paper's tables from tidy result frames, as CSV (numbers) and Markdown (formatted).

Each builder returns a :class:`Table`: ``frame`` is what goes to CSV (one row per displayed row,
numbers unrounded, intervals in ``*_ci_low``/``*_ci_high`` columns), ``markdown`` the formatted
table with intervals in brackets when the engine computed them.

- Table 1: mean embedding benchmark scores of the two embedding models of each pair, pairs with
  a published embedding checkpoint marked with † and its source listed below the table, and
  which instruction set produced it; its appendix lists every task's instruction and source;
- Table 3: H_inv of the final hidden state per pair, backbone and embedding model (CoT dataset);
- Table 4: mean k-NN overlap across layers for each k, backbone and embedding model, over all
  hidden states 0..L and over the transformer layers 1..L;
- Table 7: rows of each training set used (after sampling and mining) next to the paper's count;
- Tables 12 / 13: H_inv across probe datasets, backbone / embedding model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from hrsa.evaluate.aggregate import (
    PUBLISHED,
    PUBLISHED_MARK,
    instruction_set_note,
    sources_by_benchmark,
)
from hrsa.report.collect import PairInfo, dataset_label, headline, ordered, pair_info
from hrsa.report.output import atomic_path, write_text

MAIN_STAGES = ("backbone", "emb")
ARROW = "→"


@dataclass
class Table:
    """A built table: its title, its numbers (CSV) and its formatted Markdown."""

    title: str
    frame: pd.DataFrame
    markdown: str

    def write(self, csv: str | os.PathLike, markdown: str | os.PathLike | None = None) -> None:
        """Write the CSV and the Markdown (with the title as a heading), each atomically."""
        with atomic_path(csv) as tmp:
            self.frame.to_csv(tmp, index=False, float_format="%.6g")
        if markdown is not None:
            write_text(markdown, f"# {self.title}\n\n{self.markdown}")


# --------------------------------------------------------------------------- formatting


def format_number(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; an en dash for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def format_interval(value: float, low: float, high: float, digits: int = 3) -> str:
    """``0.108 [0.100, 0.115]``, or ``0.108`` when the interval is missing."""
    text = format_number(value, digits)
    if text == "–" or any(v is None or math.isnan(v) for v in (low, high)):
        return text
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A GitHub-flavoured Markdown table; ``align`` has one of ``l``/``r`` per column (default:
    first column left, the others right)."""
    header = list(header)
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(rule), *(line(r) for r in rows)]) + "\n"


def pairs_with_data(
    frame: pd.DataFrame, pairs: Mapping[str, PairInfo], keys: Iterable[str] | None = None
) -> list[PairInfo]:
    present = list(dict.fromkeys(frame["pair"]))
    wanted = list(keys) if keys is not None else list(pairs)
    chosen = [k for k in wanted if k in present]
    extra = [k for k in present if k not in pairs and keys is None]
    return ordered({k: pair_info(pairs, k) for k in chosen + extra})


def row_name(pair: PairInfo, stage: str) -> str:
    """Paper style: ``SFT: Qwen2.5 vs DS`` then ``→ Qwen2.5-Emb vs DS-Emb``."""
    if stage == "backbone":
        return f"{pair.family}: {pair.short_name(stage)}"
    return f"{ARROW} {pair.short_name(stage)}"


# --------------------------------------------------------------------------- Tables 3 and 4


def _stage_rows(headlines: pd.DataFrame, pairs, dataset: str, stages: Sequence[str]):
    on_dataset = headlines[headlines["dataset"] == dataset]
    for pair in pairs_with_data(on_dataset, pairs):
        for stage in stages:
            if ((on_dataset["pair"] == pair.key) & (on_dataset["stage"] == stage)).any():
                yield pair, stage


def table3(
    headlines: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    dataset: str,
    stages: Sequence[str] = MAIN_STAGES,
    digits: int = 3,
) -> Table:
    """Table 3: inverse row entropy H_inv of O* (final hidden state), backbone and ``-Emb`` rows."""
    records, rows = [], []
    for pair, stage in _stage_rows(headlines, pairs, dataset, stages):
        value, low, high = headline(headlines, pair.key, stage, dataset, "h_inv_final")
        records.append(
            {
                "family": pair.family,
                "pair": pair.key,
                "stage": stage,
                "model_pair": pair.short_name(stage),
                "h_inv": value,
                "h_inv_ci_low": low,
                "h_inv_ci_high": high,
            }
        )
        rows.append([row_name(pair, stage), format_interval(value, low, high, digits)])
    columns = ["family", "pair", "stage", "model_pair", "h_inv", "h_inv_ci_low", "h_inv_ci_high"]
    return Table(
        title=f"Table 3: inverse row entropy H_inv of O* (final hidden state, dataset {dataset})",
        frame=pd.DataFrame(records, columns=columns),
        markdown=markdown_table(["Model pair", "Inverse row entropy ↑"], rows),
    )


KNN_LAYER_MEANS = (
    ("knn_overlap_mean", "knn_overlap_k{k}", "k={k}, layers 0..L"),
    ("knn_overlap_mean_transformer_layers", "knn_overlap_transformer_k{k}", "k={k}, layers 1..L"),
)
"""Table 4's two k-NN layer means: (headline quantity, CSV column, Markdown header)."""

TABLE4_NOTE = (
    "Layers 0..L: mean over all L+1 hidden states, the embedding output (layer 0) included, as "
    "the paper defines Table 4. Layers 1..L: mean over the transformer layers only. At layer 0 "
    "every repeat of a token is the same row, so its nearest neighbours tie at cosine 1; this "
    "project breaks ties by row index (the same rule in both models, overlap ~1.0 there), while "
    "the authors' code takes the first k of a top-50 list in arbitrary order (~0.1-0.3). Their "
    "published k=5/10 means are therefore below a 0..L mean computed here by about "
    "(layer-0 gap)/(L+1); the 1..L means do not depend on the tie order."
)


def table4(
    headlines: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    dataset: str,
    ks: Sequence[int] = (5, 10, 50),
    stages: Sequence[str] = MAIN_STAGES,
    digits: int = 3,
) -> Table:
    """Table 4: k-NN overlap averaged over layers, one column per k and layer range: all hidden
    states 0..L (the paper's columns) then the transformer layers 1..L (see :data:`TABLE4_NOTE`).
    """
    records, rows = [], []
    for pair, stage in _stage_rows(headlines, pairs, dataset, stages):
        record = {
            "family": pair.family,
            "pair": pair.key,
            "stage": stage,
            "model_pair": pair.short_name(stage),
        }
        cells = [row_name(pair, stage)]
        for quantity, column, _ in KNN_LAYER_MEANS:
            for k in ks:
                value, low, high = headline(headlines, pair.key, stage, dataset, quantity, k)
                name = column.format(k=k)
                record |= {name: value, f"{name}_ci_low": low, f"{name}_ci_high": high}
                cells.append(format_interval(value, low, high, digits))
        records.append(record)
        rows.append(cells)
    columns = ["family", "pair", "stage", "model_pair"] + [
        f"{column.format(k=k)}{suffix}"
        for _, column, _ in KNN_LAYER_MEANS
        for k in ks
        for suffix in ("", "_ci_low", "_ci_high")
    ]
    header = ["Model pairs", *(label.format(k=k) for _, _, label in KNN_LAYER_MEANS for k in ks)]
    return Table(
        title=f"Table 4: mean k-NN overlap across layers (dataset {dataset})",
        frame=pd.DataFrame(records, columns=columns),
        markdown=markdown_table(header, rows) + "\n" + TABLE4_NOTE + "\n",
    )


# --------------------------------------------------------------------------- Tables 12 and 13


def h_inv_across_datasets(
    headlines: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    stage: str,
    datasets: Sequence[str],
    dataset_labels: Mapping[str, str] | None = None,
    digits: int = 4,
) -> Table:
    """Tables 12 (``stage="backbone"``) and 13 (``stage="emb"``): H_inv per pair and dataset."""
    on_stage = headlines[headlines["stage"] == stage]
    records, rows = [], []
    for pair in pairs_with_data(on_stage, pairs):
        record = {"family": pair.family, "pair": pair.key, "model_pair": pair.long_name(stage)}
        cells = [pair.family, pair.long_name(stage)]
        for dataset in datasets:
            value, low, high = headline(headlines, pair.key, stage, dataset, "h_inv_final")
            record |= {dataset: value, f"{dataset}_ci_low": low, f"{dataset}_ci_high": high}
            cells.append(format_interval(value, low, high, digits))
        records.append(record)
        rows.append(cells)
    columns = ["family", "pair", "model_pair"] + [
        f"{d}{suffix}" for d in datasets for suffix in ("", "_ci_low", "_ci_high")
    ]
    number, models = (12, "LLM backbones") if stage == "backbone" else (13, "embedding models")
    header = ["Family", "Model pair", *(f"{dataset_label(d, dataset_labels)} ↑" for d in datasets)]
    return Table(
        title=f"Table {number}: H_inv of O* across datasets ({models})",
        frame=pd.DataFrame(records, columns=columns),
        markdown=markdown_table(header, rows, align="ll" + "r" * len(datasets)),
    )


# --------------------------------------------------------------------------- Table 1


PUBLISHED_NOTE = (
    f"{PUBLISHED_MARK} published checkpoint (not trained by this run; evaluated once, "
    "its score stands for every seed): "
)
"""Start of Table 1's note on published checkpoints; the pairs and their sources follow."""


def embedding_source(models: Mapping[str, Mapping] | None, model: str) -> str:
    """Where ``model``'s published embedding checkpoint comes from:
    ``config["models"][model]["embedding_source"]["source"]``, ``?`` when not configured."""
    spec = (models or {}).get(model) or {}
    return str((spec.get("embedding_source") or {}).get("source", "?"))


def published_members(frame: pd.DataFrame, pair: PairInfo) -> list[tuple[str, str]]:
    """``(display label, model key)`` of the members of ``pair`` whose embedding model is a
    published checkpoint, as the evaluation stage's ``base_embedding`` / ``reasoning_embedding``
    columns say (first row of the pair; a frame without them: none)."""
    rows = frame[frame["pair"] == pair.key]
    if rows.empty:
        return []
    row = rows.iloc[0]
    return [
        (label, getattr(pair, role))
        for role, label in zip(("base", "reasoning"), pair.model_labels("emb"), strict=True)
        if row.get(f"{role}_embedding") == PUBLISHED
    ]


def table1(
    frame: pd.DataFrame,
    pairs: Mapping[str, PairInfo],
    digits: int = 2,
    *,
    models: Mapping[str, Mapping] | None = None,
    instructions: pd.DataFrame | None = None,
) -> Table:
    """Table 1: mean benchmark scores of the base- and reasoning-initialised embedding models.

    With ``instructions`` (the evaluation's instruction table, :func:`collect.read_instructions`)
    the CSV gains a column ``instructions`` (per benchmark, how many tasks each source
    instructed) and the Markdown a note naming the instruction set and its files; the appendix
    (:func:`instructions_appendix`) lists every task.

    The CSV keeps the evaluation stage's numbers (one row per pair and benchmark) plus the pair's
    display name and algorithm. The Markdown is the paper's wide layout, one column group per
    benchmark; scores in [0, 1] (mteb's convention) are shown x100 like the paper.

    A pair with a published embedding checkpoint (see :func:`published_members`) has its Model
    pair cell marked with † in the Markdown (not in the CSV), and a note below the table gives
    each such member's source from ``models`` (``config["models"]``, see
    :func:`embedding_source`).
    """
    frame = frame.copy()
    benchmarks = list(dict.fromkeys(frame["benchmark"]))
    scores = frame[["base_mean", "reasoning_mean"]].abs().to_numpy()
    scale = 100.0 if len(scores) and float(pd.DataFrame(scores).max().max()) <= 1.0 else 1.0
    infos = {k: pair_info(pairs, k) for k in dict.fromkeys(frame["pair"])}
    published = {k: published_members(frame, info) for k, info in infos.items()}
    frame.insert(1, "model_pair", [infos[k].short_name("emb") for k in frame["pair"]])
    frame.insert(3, "algorithm", [infos[k].algorithm for k in frame["pair"]])
    frame["family"] = [
        infos[k].family if infos[k].family != "?" else f
        for k, f in zip(frame["pair"], frame["family"], strict=True)
    ]
    if instructions is not None:
        by_benchmark = sources_by_benchmark(instructions)
        frame["instructions"] = [by_benchmark.get(b, "") for b in frame["benchmark"]]
    header = ["Family", "Model pair", "Algorithm"]
    for benchmark in benchmarks:
        header += [f"{benchmark} base-Emb", f"{benchmark} reason-Emb", f"{benchmark} Δ (Std)"]
    rows = []
    for info in ordered(infos):
        name = info.short_name("emb")
        if published[info.key]:
            name += f" {PUBLISHED_MARK}"
        cells = [info.family, name, info.algorithm]
        for benchmark in benchmarks:
            hit = frame[(frame["pair"] == info.key) & (frame["benchmark"] == benchmark)]
            if hit.empty:
                cells += ["–", "–", "–"]
                continue
            row = hit.iloc[0]
            delta = f"{scale * row['delta_mean']:+.{digits}f}"
            if not pd.isna(row["delta_std"]):
                delta += f" ± {scale * row['delta_std']:.{digits}f}"
            cells += [
                format_number(scale * row["base_mean"], digits),
                format_number(scale * row["reasoning_mean"], digits),
                delta,
            ]
        rows.append(cells)
    seeds = sorted({int(n) for n in frame["n_seeds"].dropna()})
    note = []
    if scale != 1.0:
        note.append("Scores x100.")
    if seeds:
        note.append(f"Mean over {', '.join(map(str, seeds))} seed(s); Δ = reason-Emb − base-Emb.")
    markdown = markdown_table(header, rows, align="lll" + "r" * (3 * len(benchmarks)))
    if note:
        markdown += "\n" + " ".join(note) + "\n"
    sources = [
        f"{infos[key].short_name('emb')}: "
        + ", ".join(f"{label} = `{embedding_source(models, model)}`" for label, model in members)
        for key, members in published.items()  # the evaluation's order of pairs
        if members
    ]
    if sources:
        markdown += "\n" + PUBLISHED_NOTE + "; ".join(sources) + ".\n"
    note = instruction_set_note(instructions, appendix=f"{APPENDIX_STEM}.md")
    if note:
        markdown += "\n" + note + "\n"
    return Table(
        title="Table 1: mean embedding benchmark performance",
        frame=frame,
        markdown=markdown,
    )


# --------------------------------------------------------------------------- Table 1 appendix

APPENDIX_STEM = "instructions"
"""File name (no suffix) of Table 1's instruction appendix in the report folder."""
SOURCE_SHORT = {
    "authors_task": "authors: task",
    "authors_bright": "authors: BRIGHT domain",
    "authors_default": "authors: default",
    "project_task": "project: task",
    "project_task_type": "project: task type",
    "project_default": "project: default",
    "model_prompt": "model's own prompt",
    "none": "none",
}
APPENDIX_COLUMNS = [
    "benchmark",
    "task",
    "task_type",
    "subsets",
    "n_subsets",
    "instruction",
    "source",
    "origin",
    "sha256",
    "template",
    "document_instruction",
    "runs",
    "note",
]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def instructions_appendix(instructions: pd.DataFrame) -> Table:
    """Appendix to Table 1: per task, which instruction its queries got and where it came from.

    One row per (benchmark, task, instruction, source): the subsets that got it (``all`` when
    every subset of the task did; BRIGHT has one row per domain), the file it was read from
    (URL or path, sha256) and the runs that used it (``all`` when every run of the benchmark
    did: it differs only for a model with its own query prompt)."""
    frame = instructions.fillna("").astype(str)
    keys = ["benchmark", "task", "task_type", "instruction", "source", "origin", "sha256"]
    keys += ["template", "document_instruction", "note", "runs"]
    subsets_of = frame.groupby(["benchmark", "task"], sort=False)["subset"].apply(
        lambda s: list(dict.fromkeys(s))
    )
    runs_of = frame.groupby("benchmark", sort=False)["runs"].apply(
        lambda r: {x for runs in r for x in runs.split("; ") if x}
    )
    rows = []
    for values, group in frame.groupby(keys, sort=False):
        row = dict(zip(keys, values, strict=True))
        subsets = list(dict.fromkeys(group["subset"]))
        every = subsets_of[(row["benchmark"], row["task"])]
        row["subsets"] = "all" if len(subsets) == len(every) else ", ".join(subsets)
        row["n_subsets"] = len(subsets)
        runs = {x for x in row["runs"].split("; ") if x}
        row["runs"] = "all" if runs == runs_of[row["benchmark"]] else row["runs"]
        rows.append(row)
    out = pd.DataFrame(rows, columns=APPENDIX_COLUMNS)
    show_runs = bool((out["runs"] != "all").any())
    header = ["Benchmark", "Task", "Type", "Subsets", "Instruction", "Source"]
    header += ["Runs"] if show_runs else []
    body = []
    for r in out.itertuples():
        cells = [r.benchmark, r.task, r.task_type, r.subsets, _one_line(r.instruction) or "–"]
        cells.append(SOURCE_SHORT.get(r.source, r.source) + (" *" if r.note else ""))
        body.append(cells + ([r.runs] if show_runs else []))
    files = out[out["origin"] != ""].drop_duplicates(["origin"])
    lines = []
    note = instruction_set_note(instructions, appendix=None)
    if note:
        lines += [note, ""]
    templates = sorted({t for t in out["template"] if t})
    if templates:
        shown = ", ".join("`" + t.replace("\n", "\\n") + "`" for t in templates)
        lines += [f"Queries get the template {shown} around their instruction.", ""]
    if len(files):
        lines += ["Files:", ""]
        lines += [
            f"- `{r.origin}`" + (f" (sha256 `{r.sha256}`)" if r.sha256 else "")
            for r in files.itertuples()
        ]
        lines.append("")
    lines += [
        "Source: `authors: task` = the task's entry in the authors' file, `authors: BRIGHT "
        "domain` = their per-domain BRIGHT instruction, `authors: default` = their file's default "
        "(the task has no entry), `project: ...` = this project's prompts file (task entry, task "
        "type fallback, default); * = see Notes below the table.",
        "",
        markdown_table(header, body, align="l" * len(header)),
    ]
    notes = out[out["note"] != ""].drop_duplicates(["task", "note"])
    if len(notes):
        lines += ["Notes:", ""]
        lines += [f"- {r.task}: {r.note}" for r in notes.itertuples()]
        lines.append("")
    return Table(
        title="Appendix to Table 1: the instruction of every evaluated task",
        frame=out,
        markdown="\n".join(lines),
    )


# --------------------------------------------------------------------------- Table 7


def _count(value) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{int(value):,}"
    )


def table7(data_report: Mapping, mining_report: Mapping | None = None) -> Table:
    """Table 7: rows of each training set actually used, next to the paper's Table 7 count.

    ``data_report`` is the training-data report (``contrastive.jsonl.report.json``: rows
    requested, available and sampled per set, source and verification); ``mining_report`` the
    miner's (``mined.jsonl.report.json``: per set, rows kept with annotated negatives, mined and
    dropped). Without mining, the sampled rows are the rows used.
    """
    mined_sources = (mining_report or {}).get("sources", {})
    records, rows = [], []
    for key, s in data_report.get("sets", {}).items():
        m = mined_sources.get(key)
        used = m["written"] if m else s["used"]
        n_paper = s.get("n_paper")
        if m:
            negatives = {"kept": "annotated", "mined": "mined", "mixed": "annotated + mined"}[
                m["policy"]
            ]
        else:
            negatives = "annotated" if s.get("with_negatives") else "none"
        records.append(
            {
                "key": key,
                "dataset": s.get("name", key),
                "n_paper": n_paper,
                "requested": s["requested"],
                "available": s["available"],
                "sampled": s["used"],
                "kept_annotated": m["kept_annotated"] if m else None,
                "mined": m["mined_rows"] if m else None,
                "mined_negatives": m.get("mined_negatives") if m else None,
                "dropped": m["dropped"] if m else 0,
                "used": used,
                "used_minus_paper": None if n_paper is None else used - n_paper,
                "negatives": negatives,
                "source": s.get("origin", ""),
                "verified": s.get("verified"),
            }
        )
        source = s.get("origin", "")
        if s.get("verified") is False:
            source += " (unverified)"
        delta = "–" if n_paper is None else f"{used - n_paper:+,}"
        mined_negatives = _count(m.get("mined_negatives")) if m else "–"
        rows.append(
            [
                s.get("name", key),
                _count(n_paper),
                _count(used),
                delta,
                negatives,
                mined_negatives,
                source,
            ]
        )
    frame = pd.DataFrame(
        records,
        columns=[
            "key",
            "dataset",
            "n_paper",
            "requested",
            "available",
            "sampled",
            "kept_annotated",
            "mined",
            "mined_negatives",
            "dropped",
            "used",
            "used_minus_paper",
            "negatives",
            "source",
            "verified",
        ],
    )
    paper_total = sum(r["n_paper"] or 0 for r in records)
    used_total = sum(r["used"] for r in records)
    rows.append(
        [
            "**Total**",
            _count(paper_total),
            _count(used_total),
            f"{used_total - paper_total:+,}",
            "",
            _count(sum(r["mined_negatives"] or 0 for r in records)) if mined_sources else "–",
            "",
        ]
    )
    markdown = markdown_table(
        ["Dataset", "Table 7", "Used", "Δ", "Negatives", "Mined negatives", "Source"],
        rows,
        align="lrrrlrl",
    )
    scale = data_report.get("scale", 1.0)
    notes = [
        f"Rows per set: `{data_report.get('rows')}`"
        + (f" × scale {scale:g}" if scale != 1.0 else "")
        + f", seeded sample (seed {data_report.get('seed', 0)}) of each source.",
        "Used = rows in the training data after mining; a row left without any negative is "
        "dropped. Mined negatives = hard negatives the miner wrote for the set (annotated "
        "negatives are kept as published).",
    ]
    short = [r["dataset"] for r in records if r["sampled"] < r["requested"]]
    if short:
        notes.append(f"Shortfall (fewer rows than requested): {', '.join(short)}.")
    unverified = [r["dataset"] for r in records if r["verified"] is False]
    if unverified:
        notes.append(
            "Unverified sources (closest public copy, see config/README.md): "
            + ", ".join(unverified)
            + "."
        )
    markdown += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return Table(
        title="Table 7: training data, rows per dataset (paper vs this run)",
        frame=frame,
        markdown=markdown,
    )


# --------------------------------------------------------------------------- Table 6


def table6(
    summary: pd.DataFrame,
    models: Sequence[str],
    benchmarks: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    score: str = "mean_task",
    adapter: Mapping | None = None,
) -> Table:
    """Table 6: each LoRA-trained model's benchmark score next to its fully fine-tuned twin.

    ``summary`` is MTEB's per-run summary (``results/mteb/summary.csv``: model, stage, seed,
    benchmark, scores, complete); ``models`` the models trained both ways (training.lora.models).
    Per model and benchmark: the mean (and std over seeds, ddof 1) of the full (stage ``emb``) and
    LoRA (stage ``lora``) runs, over the seeds where both are complete, and the paired difference
    LoRA - full. Markdown scores are in points (x 100) as in the paper.
    """
    from hrsa.evaluate.aggregate import DELTA_DDOF, SCALE

    labels = labels or {}
    records, problems = [], []
    for model in models:
        for bench in benchmarks:
            cell = summary[(summary["model"] == model) & (summary["benchmark"] == bench)]
            runs = {
                stage: cell[cell["stage"] == stage].set_index("seed")[[score, "complete"]]
                for stage in ("emb", "lora")
            }
            seeds = sorted(set(runs["emb"].index) | set(runs["lora"].index))
            kept = []
            for seed in seeds:
                missing = [
                    st
                    for st in ("emb", "lora")
                    if seed not in runs[st].index or not bool(runs[st].at[seed, "complete"])
                ]
                if missing:
                    problems.append(f"{model} / {bench} / seed {seed}: no complete {missing} run")
                else:
                    kept.append(seed)
            full = pd.Series([runs["emb"].at[s, score] for s in kept], dtype=float)
            lora = pd.Series([runs["lora"].at[s, score] for s in kept], dtype=float)
            enough = len(kept) > DELTA_DDOF
            records.append(
                {
                    "model": model,
                    "label": labels.get(model, model),
                    "benchmark": bench,
                    "lora_mean": lora.mean() if kept else math.nan,
                    "lora_std": lora.std(ddof=DELTA_DDOF) if enough else math.nan,
                    "full_mean": full.mean() if kept else math.nan,
                    "full_std": full.std(ddof=DELTA_DDOF) if enough else math.nan,
                    "delta_mean": (lora - full).mean() if kept else math.nan,
                    "delta_std": (lora - full).std(ddof=DELTA_DDOF) if enough else math.nan,
                    "n_seeds": len(kept),
                }
            )
    frame = pd.DataFrame(
        records,
        columns=[
            "model",
            "label",
            "benchmark",
            "lora_mean",
            "lora_std",
            "full_mean",
            "full_std",
            "delta_mean",
            "delta_std",
            "n_seeds",
        ],
    )

    def points(mean, std, signed=False):
        if mean is None or math.isnan(mean):
            return "n/a"
        text = f"{SCALE * mean:+.2f}" if signed else f"{SCALE * mean:.2f}"
        return text if std is None or math.isnan(std) else f"{text} ± {SCALE * std:.2f}"

    rows = [
        [
            r["label"],
            r["benchmark"],
            points(r["lora_mean"], r["lora_std"]),
            points(r["full_mean"], r["full_std"]),
            points(r["delta_mean"], r["delta_std"], signed=True),
            str(r["n_seeds"]),
        ]
        for r in records
    ]
    markdown = markdown_table(
        ["Model", "Benchmark", "With LoRA", "Without LoRA", "Δ (LoRA − full)", "Seeds"],
        rows,
        align="llrrrr",
    )
    notes = [
        f"Score: `{score}` of each benchmark, in points (x 100); mean ± std over seeds "
        "(std with ddof 1, shown with two or more seeds).",
        "Both models are trained with the identical recipe and data (paper Table 5); the LoRA "
        "model trains only its adapters and is saved merged.",
    ]
    if adapter:
        notes.append(
            "LoRA: "
            + ", ".join(f"{k} {adapter[k]}" for k in ("rank", "alpha", "dropout", "target_modules"))
            + (
                f", learning rate {adapter['learning_rate']}"
                if adapter.get("learning_rate") is not None
                else ", the full model's learning rate"
            )
            + "."
        )
    notes.append(
        "The paper (Table 6, MTEB(Multilingual, v2)): LoRA 42.45 / 42.06 vs full 46.19 / 46.25 "
        "for DS-Distill-Qwen-1.5B-Emb / NV-ProRL-Emb."
    )
    notes += [f"Left out: {p}." for p in problems]
    markdown += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return Table(
        title="Table 6: LoRA vs full fine-tuning of the embedding models",
        frame=frame,
        markdown=markdown,
    )
