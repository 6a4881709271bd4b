"""Table 11 (the generated CoT dataset's yield per source) and the dataset's card.

Both read the statistics ``hrsa.cot.pipeline.source_stats`` writes next to each source's judged
traces (``results/cot/judged/<source>.json``), in the configured order of the sources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pandas as pd

from hrsa.report.tables import Table, markdown_table

COLUMNS = [
    "source",
    "label",
    "tier",
    "dataset",
    "total",
    "valid",
    "invalid",
    "not_judged",
    "generation_failed",
    "judge_failed",
    "yield",
    "mean_reasoning_tokens",
    "mean_reasoning_tokens_all",
    "reasoning_tokens_measure",
    "paper_total",
    "paper_valid",
    "paper_yield",
]


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _int(value) -> str:
    return "–" if value is None else f"{int(value):,}"


def _tokens(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def table11(stats: Sequence[Mapping]) -> Table:
    """Table 11: per source, the problems sent (Total), the traces judged correct (Valid), the
    yield and the mean reasoning tokens of the valid traces, next to the paper's counts where
    the config gives them (``paper_total``/``paper_valid``)."""
    records, rows = [], []
    for s in stats:
        paper = s.get("paper") or {}
        p_total, p_valid = paper.get("total"), paper.get("valid")
        p_yield = p_valid / p_total if p_total and p_valid is not None else None
        records.append(
            {
                **{k: s.get(k) for k in COLUMNS if k in s},
                "paper_total": p_total,
                "paper_valid": p_valid,
                "paper_yield": p_yield,
            }
        )
        unjudged = s["not_judged"]
        rows.append(
            [
                f"{s['label']} ({str(s['tier']).capitalize()})",
                _int(s["total"]),
                _int(s["valid"]),
                _pct(s["yield"]),
                _tokens(s["mean_reasoning_tokens"]),
                _int(unjudged),
                _int(p_total),
                _int(p_valid),
                _pct(p_yield),
            ]
        )
    total = sum(s["total"] for s in stats)
    valid = sum(s["valid"] for s in stats)
    weighted = [
        (s["mean_reasoning_tokens"], s["valid"])
        for s in stats
        if s["mean_reasoning_tokens"] is not None
    ]
    mean_tokens = (
        sum(m * n for m, n in weighted) / sum(n for _, n in weighted)
        if weighted and sum(n for _, n in weighted)
        else None
    )
    papers = [s.get("paper") or {} for s in stats]
    has_paper = stats and all("total" in p and "valid" in p for p in papers)
    p_total = sum(p["total"] for p in papers) if has_paper else None
    p_valid = sum(p["valid"] for p in papers) if has_paper else None
    rows.append(
        [
            "**Total / Average**",
            _int(total),
            _int(valid),
            _pct(valid / total if total else None),
            _tokens(mean_tokens),
            _int(sum(s["not_judged"] for s in stats)),
            _int(p_total),
            _int(p_valid),
            _pct(p_valid / p_total if p_total else None),
        ]
    )
    markdown = markdown_table(
        [
            "Dataset (Difficulty)",
            "Total",
            "Valid",
            "Acc. (%)",
            "Mean reasoning tokens",
            "Not judged",
            "Paper: Total",
            "Paper: Valid",
            "Paper: Acc. (%)",
        ],
        rows,
    )
    measures = sorted({str(s.get("reasoning_tokens_measure")) for s in stats})
    skipped: dict[str, int] = {}
    for s in stats:
        for reason, n in (s.get("skipped") or {}).items():
            skipped[reason] = skipped.get(reason, 0) + n
    notes = [
        "Total = problems sent to the generator; Valid = traces the judge found correct "
        "(correctness_label 1); Acc. = Valid / Total, the paper's yield.",
        "Mean reasoning tokens of the valid traces, counted as: "
        + ", ".join(measures)
        + " (server = the server's usage, tokenizer = the generator's tokenizer, "
        "authors_estimate = characters / 1.3 as the authors' code).",
        "Not judged = skipped or failed traces (correctness_label -1): "
        + (", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none skipped")
        + f"; failed judge requests: {sum(s['judge_failed'] for s in stats)}.",
        "Models, settings and dates: the dataset card (cot_card.md).",
    ]
    markdown += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return Table(
        title="Table 11: the generated CoT dataset, yield per source (paper vs this run)",
        frame=pd.DataFrame(records, columns=COLUMNS),
        markdown=markdown,
    )


def _settings(settings) -> str:
    return "`" + json.dumps(settings, sort_keys=True) + "`" if settings else "–"


def cot_card(stats: Sequence[Mapping]) -> str:
    """The generated CoT dataset's card (Markdown): what was generated from which sources, by
    which models with which settings and prompts, when, and what came out."""
    first = stats[0] if stats else {}
    gen, jud = first.get("generator") or {}, first.get("judge") or {}
    lines = [
        "# The generated CoT dataset (card)",
        "",
        "Reasoning traces generated and judged by this workflow (paper Appendix C; "
        "`cot_generation` in the config), in the schema of the authors' published traces "
        "(`problem`, `reasoning`, `answer`, `correctness_label`, ...): "
        "`results/cot/judged/<source>.jsonl`, read by `probe_datasets.<key>: {registry: cot, "
        "traces: generated}`. Yield per source: Table 11.",
        "",
        "## What",
        "",
    ]
    rows = []
    for s in stats:
        where = s.get("dataset") or "?"
        if s.get("config"):
            where += f" ({s['config']})"
        rows.append(
            [
                s["label"],
                str(s["tier"]),
                f"`{where}` split `{s.get('split')}`",
                _settings(s.get("selection")),
                _int(s["total"]),
                _int(s["valid"]),
            ]
        )
    lines.append(
        markdown_table(
            ["Source", "Tier", "Dataset", "Selection", "Problems", "Valid"], rows, align="lllrrr"
        )
    )
    lines += [
        "## By",
        "",
        f"- Generator: `{gen.get('model_id')}` ({gen.get('serve')}); request settings "
        f"{_settings(gen.get('settings'))}; reasoning budget {gen.get('reasoning_budget')} "
        f"({gen.get('budget_measure')}).",
        f"- Judge: `{jud.get('model_id')}` ({jud.get('serve')}); request settings "
        f"{_settings(jud.get('settings'))}; a trace is valid iff the reply contains "
        f"`{jud.get('valid_if_contains')}`.",
    ]
    budgets = {s["label"]: (s.get("generator") or {}).get("reasoning_budget") for s in stats}
    if len(set(budgets.values())) > 1:
        lines.append(
            "- Reasoning budget per source: "
            + ", ".join(f"{k} {'none' if v is None else v}" for k, v in budgets.items())
            + "."
        )
    prompts = first.get("prompts") or {}
    if prompts:
        lines.append(
            f"- Prompts: `{prompts.get('file')}` (sha256 `{str(prompts.get('sha256'))[:12]}`, "
            f"templates `{str(prompts.get('templates_sha256'))[:12]}`)."
        )
    generated = [t for s in stats for t in s.get("generated") or [] if t]
    judged = [t for s in stats for t in s.get("judged") or [] if t]
    lines += [
        "",
        "## When",
        "",
        f"- Generated: {min(generated) if generated else '–'} to "
        f"{max(generated) if generated else '–'}.",
        f"- Judged: {min(judged) if judged else '–'} to {max(judged) if judged else '–'}.",
        f"- Written by hrsa {first.get('hrsa_version', '?')}.",
        "",
        "## Left out",
        "",
    ]
    for s in stats:
        skipped = ", ".join(f"{k} {v}" for k, v in (s.get("skipped") or {}).items()) or "none"
        lines.append(
            f"- {s['label']}: judged incorrect {s['invalid']}; skipped: {skipped}; failed "
            f"requests: generation {s['generation_failed']}, judge {s['judge_failed']}."
        )
    return "\n".join(lines) + "\n"
