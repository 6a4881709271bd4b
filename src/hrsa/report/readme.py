"""``results/report/README.md``: every table and figure, linked, with the paper item it reproduces."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hrsa.plan import COT_CARD, RLVR_VS_SFT, TABLE8_FIGURE, TASK_FIGURE
from hrsa.report.collect import PairInfo, pair_info
from hrsa.report.output import write_text

TABLES = {
    1: "Mean embedding benchmark scores of the base- and reasoning-initialised embedding models "
    "and their difference (mean ± std over seeds).",
    2: "HRSA verdicts (coordinate basis, global and local geometry, linear readout, manifold "
    "status), derived from the numbers with the thresholds in `config['report']['verdicts']`: "
    "first one row per family (SFT, RLVR) and stage, each number aggregated over the family's "
    "pairs (median by default, `family_aggregate`), as the paper's Table 2 states it; then one "
    "row per pair and stage. The local-geometry verdict uses the k-NN mean over transformer "
    "layers 1..L by default (`knn_layers`); both layer means are shown.",
    3: "Inverse row entropy H_inv of the Procrustes map O* on the final hidden state, LLMs and "
    "their embedding models, on the main (CoT) dataset.",
    4: "Mean k-NN overlap across layers (k = 5, 10, 50), LLMs and their embedding models: first "
    "over all hidden states 0..L (the paper's definition, embedding output included), then over "
    "the transformer layers 1..L only (see Conventions: why the authors' k=5/10 values differ).",
    6: "LoRA vs full fine-tuning: benchmark scores of the models trained both ways with the "
    "identical recipe (`training.lora`), and their difference.",
    7: "Training data: rows of each contrastive training set used in this run (after seeded "
    "sampling and hard-negative mining) next to the paper's Table 7 count, with each set's "
    "source, how its negatives were obtained and how many were mined.",
    11: "The generated CoT dataset (`cot_generation`): per source, the problems sent, the traces "
    "judged correct, the yield and the mean reasoning tokens, next to the paper's Table 11.",
    12: "H_inv of O* across datasets, base vs reasoning LLMs.",
    13: "H_inv of O* across datasets, base vs reasoning embedding models.",
}
FIGURES = {
    3: "Layer-by-layer heatmaps of dimension-wise correlation and linear CKA; rows LLM vs "
    "embedding model, columns SFT vs RLVR pair.",
    4: "Cross-model linear probe accuracy (train/dev/test), probe fitted on the base model and "
    "evaluated on both.",
    5: "Training dynamics: HRSA between the two embedding models at every training snapshot.",
    6: "Dimension-wise correlation heatmaps of every LLM pair, per dataset.",
    7: "Dimension-wise correlation heatmaps of every embedding-model pair, per dataset.",
    8: "Linear CKA heatmaps of every LLM pair, per dataset.",
    9: "Linear CKA heatmaps of every embedding-model pair, per dataset.",
    10: "k-NN overlap over layers (one line per k) of every LLM pair, per dataset.",
    11: "k-NN overlap over layers (one line per k) of every embedding-model pair, per dataset.",
    12: "Cross-model linear probe of every LLM pair.",
    13: "Cross-model linear probe of every embedding-model pair.",
}
APPENDICES = {
    "instructions": (
        "Table 1 (appendix)",
        "The instruction every evaluated task's queries got (documents get none) and where it "
        "came from: the authors' published files or this project's prompts file (task entry, "
        "task-type fallback, default), with the files' sha256.",
    ),
}
# Cards listed right after their table: stem -> (table number, what it reproduces, description)
CARDS = {
    RLVR_VS_SFT: (
        2,
        "Table 2 (RLVR vs SFT)",
        "The paper's central finding tested on this run: per stage, the RLVR family's CKA, H_inv "
        "and k-NN overlap (and ρ, shown) against the SFT family's, with the bootstrap intervals, "
        "which family is closer to its base and whether the intervals separate them (the "
        "sentence is under Table 2's Markdown and in Verdicts below).",
    ),
    COT_CARD: (
        11,
        "Table 11 (dataset card)",
        "The generated CoT dataset's card: sources and selection, generator and judge with "
        "their settings and prompts, dates, and what was left out.",
    ),
}
FORMATS = {".csv": "CSV", ".md": "Markdown", ".png": "PNG", ".pdf": "PDF"}


@dataclass
class Entry:
    """One report output (all its formats), what it reproduces and what it shows."""

    stem: str
    kind: str  # "table", "figure" or "pair"
    order: tuple
    reproduces: str
    description: str
    files: list[str] = field(default_factory=list)


def describe(stem: str, pairs: Mapping[str, PairInfo]) -> Entry | None:
    """The :class:`Entry` of an output named ``stem`` (path under the report folder, no suffix)."""
    if match := re.fullmatch(r"table(\d+)", stem):
        n = int(match.group(1))
        return Entry(stem, "table", (n,), f"Table {n}", TABLES.get(n, ""))
    if stem in CARDS:
        number, reproduces, description = CARDS[stem]
        return Entry(stem, "table", (number, stem), reproduces, description)
    if stem in APPENDICES:  # listed right after Table 1
        reproduces, description = APPENDICES[stem]
        return Entry(stem, "table", (1, stem), reproduces, description)
    if match := re.fullmatch(r"figure(\d+)", stem):
        n = int(match.group(1))
        return Entry(stem, "figure", (n, ""), f"Figure {n}", FIGURES.get(n, ""))
    if stem == TABLE8_FIGURE:  # after the paper's numbered figures
        return Entry(
            stem,
            "figure",
            (100, stem),
            "Table 8 alternatives",
            "The extra metrics of hrsa.extra_metrics (the paper's Table 8 alternatives and any "
            "plug-in) per hidden state on the shared subsample, one line per pair.",
        )
    if stem == TASK_FIGURE:
        return Entry(
            stem,
            "figure",
            (101, stem),
            "the tiny pairs' training (not in the paper)",
            "What RL and SFT did to the tiny base on its verifiable task: the RLVR model's GRPO "
            "reward per step, the greedy held-out accuracy of the base and of each partner, and "
            "the relative weight change ||dW||/||W|| per layer (CSV: the numbers).",
        )
    if match := re.fullmatch(r"figure5/(.+)", stem):
        pair = pair_info(pairs, match.group(1))
        return Entry(
            stem,
            "figure",
            (5, pair.key),
            "Figure 5",
            f"{FIGURES[5]} Pair: {pair.short_name('emb')}.",
        )
    if match := re.fullmatch(r"pairs/(.+)", stem):
        pair = pair_info(pairs, match.group(1))
        return Entry(
            stem,
            "pair",
            (pair.key,),
            "Figures 6-11, one pair",
            f"{pair.long_name()} ({pair.family}): dimension-wise correlation, linear CKA and k-NN "
            "overlap for every stage and dataset on one page.",
        )
    return None


def entries(
    files: Iterable[str | os.PathLike], report_dir: str | os.PathLike, pairs: Mapping[str, PairInfo]
) -> list[Entry]:
    """Group output files by name into entries, tables then figures then per-pair pages."""
    found: dict[str, Entry] = {}
    for file in files:
        relative = Path(os.path.relpath(file, report_dir))
        if relative.suffix not in FORMATS:
            continue
        stem = relative.with_suffix("").as_posix()
        entry = found.get(stem) or describe(stem, pairs)
        if entry is None:
            continue
        found[stem] = entry
        entry.files.append(relative.as_posix())
    kinds = ("table", "figure", "pair")
    ordered_entries = sorted(found.values(), key=lambda e: (kinds.index(e.kind), e.order))
    for entry in ordered_entries:
        entry.files.sort(key=lambda f: list(FORMATS).index(Path(f).suffix))
    return ordered_entries


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A model whose embedding model is a published checkpoint, not trained by this run."""

    model: str
    label: str
    source: str
    revision: str | None = None


def published_checkpoints(
    pairs: Mapping[str, PairInfo], models: Mapping[str, Mapping] | None
) -> list[PublishedCheckpoint]:
    """The models of ``config["models"]`` (in config order) with an ``embedding_source`` that
    are a member of some pair in ``pairs``."""
    members = {m for p in pairs.values() for m in (p.base, p.reasoning)}
    found = []
    for model, spec in (models or {}).items():
        source = (spec or {}).get("embedding_source")
        if not source or model not in members:
            continue
        found.append(
            PublishedCheckpoint(
                model=model,
                label=str(spec.get("label", model)),
                source=str(source.get("source", "?")),
                revision=source.get("revision") or None,
            )
        )
    return found


def published_section(published: Sequence[PublishedCheckpoint]) -> list[str]:
    """The README's "Published checkpoints" lines (none when nothing is published)."""
    if not published:
        return []
    lines = [
        "## Published checkpoints",
        "",
        "These models' embedding models (stage `emb`, Table 1) are published checkpoints, not "
        "trained by this run (no training-dynamics snapshots for their pairs):",
        "",
    ]
    for p in published:
        pin = f" @ {p.revision}" if p.revision else ""
        lines.append(f"- {p.label} (`{p.model}`): `{p.source}`{pin}")
    return [*lines, ""]


def _links(entry: Entry) -> str:
    return " · ".join(f"[{FORMATS[Path(f).suffix]}]({f})" for f in entry.files)


def readme_text(
    files: Iterable[str | os.PathLike],
    report_dir: str | os.PathLike,
    pairs: Mapping[str, PairInfo],
    skipped: Mapping[str, str] | None = None,
    verdicts_markdown: str | None = None,
    example_figure: str = "figure3.png",
    models: Mapping[str, Mapping] | None = None,
) -> str:
    """The README's Markdown: how to build, then one line per table and figure, the verdicts
    (``verdicts_markdown``, Table 2's Markdown), what was not built (``skipped``), conventions,
    and the published embedding checkpoints among ``models`` (``config["models"]``, see
    :func:`published_checkpoints`).
    """
    found = entries(files, report_dir, pairs)
    lines = [
        "# HRSA report",
        "",
        "Every table and figure of *Do Reasoning Models Enhance Embedding Models?* reproduced from",
        "this workflow's results (`results/hrsa/`, `results/mteb/`). Written by the report rules",
        "(`rules/report.smk`); do not edit by hand.",
        "",
        "## Build",
        "",
        "```bash",
        "make run                                          # the whole workflow, ends with this report",
        "snakemake --cores 2 report_all                    # only the report (and what it needs)",
        "snakemake --cores 2 results/report/table4.csv     # one table",
        "snakemake --cores 2 results/report/pairs/PAIR.png # one pair's figures (PAIR: a config pair)",
        "snakemake --report report.html                    # browsable HTML report with captions",
        "make report                                       # the same, into results/report.html",
        "```",
        "",
    ]
    figure_files = {f for e in found for f in e.files}
    if example_figure in figure_files:
        lines += [f"![Figure 3 of this run]({example_figure})", ""]
    for kind, heading in (("table", "Tables"), ("figure", "Figures"), ("pair", "Per pair")):
        mine = [e for e in found if e.kind == kind]
        if not mine:
            continue
        lines += [
            f"## {heading}",
            "",
            "| Output | Reproduces | What it shows |",
            "|:---|:---|:---|",
        ]
        lines += [f"| {e.stem}: {_links(e)} | {e.reproduces} | {e.description} |" for e in mine]
        lines.append("")
    if verdicts_markdown:
        body = re.sub(r"^# .*\n+", "", verdicts_markdown.strip() + "\n")
        lines += ["## Verdicts (Table 2)", "", body.rstrip(), ""]
    if skipped:
        lines += ["## Not built", ""]
        lines += [f"- **{name}**: {reason}" for name, reason in skipped.items()]
        lines.append("")
    lines += [
        "## Conventions",
        "",
        "- Heatmaps: y = base-model layer, x = reasoning-model layer, layer 0 = embedding output"
        " (bottom left); dimension-wise correlation on RdBu_r fixed to [-1, 1], linear CKA on"
        " viridis fixed to [0, 1]; grey cells have no value.",
        "- Intervals in brackets (tables) and bands (figures) are the HRSA engine's confidence"
        " intervals, shown where it computed them.",
        "- Grid figures put SFT-tuned pairs on a light red background, as the paper does.",
        "- `-Emb` names the embedding model trained from a backbone.",
        "- k-NN overlap at layer 0 (the embedding lookup): every repeat of a token is the same"
        " row there, so its nearest neighbours tie at cosine 1. This workflow breaks ties by row"
        " index, the same rule in both models, and gets ~1.0 at layer 0; the authors' code takes"
        " the first k of a top-50 list, an arbitrary order inside the tie, and gets ~0.1-0.3."
        " Their published k=5/10 layer means are therefore lower than this workflow's 0..L mean"
        " by about (layer-0 gap)/(L+1). Table 4 shows both the 0..L mean (the paper's column)"
        " and the 1..L mean (transformer layers only, independent of the tie order);"
        " `summary.json` carries both (`knn_overlap_mean`,"
        " `knn_overlap_mean_transformer_layers`) and the layer-0 value.",
        "",
    ]
    lines += published_section(published_checkpoints(pairs, models))
    return "\n".join(lines)


VERDICTS_FILE = "table2.md"


def write_readme(
    path: str | os.PathLike,
    files: Iterable[str | os.PathLike],
    verdicts_markdown: str | None = None,
    **kwargs,
) -> None:
    """Write :func:`readme_text` (``report_dir`` = the README's folder) atomically to ``path``,
    in one go. Without ``verdicts_markdown``, the verdicts are read from Table 2's Markdown
    (:data:`VERDICTS_FILE`) when ``files`` has it."""
    files = list(files)
    if verdicts_markdown is None:
        verdicts = [Path(f) for f in files if Path(f).name == VERDICTS_FILE]
        if verdicts:
            verdicts_markdown = verdicts[0].read_text(encoding="utf-8")
    write_text(
        path,
        readme_text(
            files, report_dir=Path(path).parent, verdicts_markdown=verdicts_markdown, **kwargs
        ),
    )
