"""Small local copies of the paper's probe sources, in exactly their real schema.

:func:`write_probe_mirror` writes a data mirror (layout of :mod:`hrsa.data.remote`) holding the
authors' four CoT trace files, MMLU-Pro's test split and AG News's test split, each with exactly
the fields the registry in :mod:`hrsa.data.probe` declares for the real source - same names,
same types, same nesting - and nothing else. The loaders read them by the code path that reads the
real copies; only the location differs. The texts come from :mod:`hrsa.data.synthetic`, so the
tiny offline tokenizers cover them and a rehearsal runs in seconds: arithmetic problems with
step-by-step traces (a mix of correct, incorrect and failed generations), multiple-choice
questions over MMLU-Pro's 14 real category names, and four-topic news sentences.

Which optional CoT fields each file carries (``cot_length_*``, ``skipped``, ``skip_reason``,
``error``) is illustrative: the real files differ in that too, and the loader reads none of them.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from ..atomic import atomic_path
from . import remote, synthetic
from .probe import AG_NEWS_LABELS, COT_BASE, COT_FILES, MMLU_PRO_CATEGORIES, REGISTRY

# rows per CoT file (correct, incorrect, failed): small, with >= 16 correct hard traces
COT_COUNTS: dict[str, tuple[int, int, int]] = {
    "qwen3_32b_openai_gsm8k_outputs_evaluated.jsonl": (14, 4, 2),
    "qwen3_32b_HuggingFaceH4_MATH-500_outputs_evaluated.jsonl": (12, 4, 2),
    "qwen3_32b_AI-MO_NuminaMath-CoT_cn_k12_outputs_evaluated.jsonl": (8, 3, 1),
    "qwen3_32b_LiveMathbench_evaluated.jsonl": (20, 10, 2),
}
# which optional fields each file carries (see the module docstring)
COT_OPTIONAL: dict[str, tuple[str, ...]] = {
    "qwen3_32b_openai_gsm8k_outputs_evaluated.jsonl": (),
    "qwen3_32b_HuggingFaceH4_MATH-500_outputs_evaluated.jsonl": (
        "cot_length_words",
        "cot_length_tokens",
        "cot_length_chars",
    ),
    "qwen3_32b_AI-MO_NuminaMath-CoT_cn_k12_outputs_evaluated.jsonl": (
        "skipped",
        "skip_reason",
        "error",
    ),
    "qwen3_32b_LiveMathbench_evaluated.jsonl": (
        "cot_length_words",
        "cot_length_tokens",
        "cot_length_chars",
        "skipped",
        "skip_reason",
        "error",
    ),
}
COT_SOURCE_DATASETS = {
    "qwen3_32b_openai_gsm8k_outputs_evaluated.jsonl": ("openai/gsm8k", "test"),
    "qwen3_32b_HuggingFaceH4_MATH-500_outputs_evaluated.jsonl": ("HuggingFaceH4/MATH-500", "test"),
    "qwen3_32b_AI-MO_NuminaMath-CoT_cn_k12_outputs_evaluated.jsonl": (
        "AI-MO/NuminaMath-CoT",
        "train",
    ),
    "qwen3_32b_LiveMathbench_evaluated.jsonl": ("opencompass/LiveMathBench", "test"),
}


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def _split_trace(text: str) -> tuple[str, str, str]:
    """A synthetic arithmetic trace as (problem, reasoning, answer)."""
    problem, rest = text.split(" Let us think step by step. ", 1)
    steps, answer = rest.rsplit(" Answer: ", 1)
    return problem, steps, answer.rstrip(".")


def _cot_rows(name: str, tier: str, seed: int) -> list[dict]:
    n_ok, n_wrong, n_failed = COT_COUNTS[name]
    dataset, split = COT_SOURCE_DATASETS[name]
    pool = synthetic.arithmetic_traces(40 * (n_ok + n_wrong + n_failed), seed=seed, error_rate=0.4)
    pool = [t for t in pool if t["tier"] == tier]  # the generator's tiers: 2, 3 or 5 steps
    correct = [t for t in pool if t["correctness_label"] == 1]
    wrong = [t for t in pool if t["correctness_label"] == 0]
    picked = (
        [(t, 1) for t in correct[:n_ok]]
        + [(t, 0) for t in wrong[:n_wrong]]
        + [(t, -1) for t in correct[n_ok : n_ok + n_failed]]
    )
    random.Random(f"cot-order-{name}-{seed}").shuffle(picked)
    optional = COT_OPTIONAL[name]
    rows = []
    for i, (trace, label) in enumerate(picked):
        problem, steps, answer = _split_trace(trace["text"])
        if label == -1:
            reasoning, answer = "", ""
        else:
            # a trace of a few hundred characters: the steps, a check, the final answer
            reasoning = (
                f"Let us think step by step. {steps} Let us check each step again. {steps} "
                f"So the answer is {answer}."
            )
        row = {
            "timestamp": f"2025-06-{1 + i % 28:02d}T{i % 24:02d}:00:00",
            "dataset": dataset,
            "split": split,
            "question_id": f"{dataset.rsplit('/', 1)[-1]}-{i}",
            "model": "Qwen/Qwen3-32B",
            "problem": problem,
            "messages": [
                {"role": "user", "content": problem},
                {"role": "assistant", "content": reasoning},
            ],
            "reasoning": reasoning,
            "answer": answer,
            "correctness_label": label,
            "evaluator_model": "gpt-4o-mini",
        }
        extra = {
            "cot_length_words": len(reasoning.split()),
            "cot_length_tokens": len(reasoning.split()) * 2,
            "cot_length_chars": len(reasoning),
            "skipped": label == -1,
            "skip_reason": "generation failed" if label == -1 else "",
            "error": "timeout" if label == -1 else "",
        }
        row.update({k: extra[k] for k in optional})
        rows.append(row)
    return rows


def _mmlu_pro_rows(per_category: int, seed: int) -> list[dict]:
    rng = random.Random(f"mmlu-pro-{seed}")
    words = [w for ws in synthetic.TOPICS.values() for w in ws]
    sentences = [r["text"] for r in synthetic.topic_sentences(14 * per_category, seed)]
    rows = []
    for c, category in enumerate(MMLU_PRO_CATEGORIES):
        for j in range(per_category):
            topic = synthetic.TOPIC_NAMES[(c + j) % len(synthetic.TOPIC_NAMES)]
            right = rng.choice(synthetic.TOPICS[topic])
            options = rng.sample([w for w in words if w not in synthetic.TOPICS[topic]], 9)
            index = rng.randrange(10)
            options.insert(index, right)
            rows.append(
                {
                    "question_id": len(rows) + 70,
                    "question": (
                        f"{sentences[len(rows)]} Which word belongs to the topic {topic}?"
                    ),
                    "options": options,
                    "answer": "ABCDEFGHIJ"[index],
                    "answer_index": index,
                    "cot_content": "",
                    "category": category,
                    "src": f"ori_mmlu-{category.replace(' ', '_')}",
                }
            )
    return rows


def _ag_news_rows(n: int, seed: int) -> list[dict]:
    # synthetic topics are world, sports, business, science: AG News's label order
    assert len(synthetic.TOPIC_NAMES) == len(AG_NEWS_LABELS)
    return [{"text": r["text"], "label": r["label"]} for r in synthetic.topic_sentences(n, seed)]


def write_probe_mirror(
    mirror_dir: str | os.PathLike,
    *,
    seed: int = 0,
    ag_news_rows: int = 200,
    mmlu_pro_per_category: int = 8,
) -> dict[str, list[Path]]:
    """Write small deterministic copies of the CoT, MMLU-Pro and AG News sources into a mirror.

    Files land where :mod:`hrsa.data.remote` looks for them under ``data_mirror``:
    ``hf/<repo>/default/<split>.jsonl`` for the Hub datasets and ``url/<host>/<path>`` for the four
    CoT files. Returns the written paths per registry key. Sizes: CoT 12-32 rows per file (20 of
    the hard tier correct), MMLU-Pro ``mmlu_pro_per_category`` rows of each of the 14 categories,
    AG News ``ag_news_rows`` rows (the real split has 7,600).
    """
    mirror = Path(mirror_dir)
    out: dict[str, list[Path]] = {"cot": [], "mmlu_pro": [], "ag_news": []}
    for tier, names in COT_FILES.items():
        for name in names:
            url = f"{COT_BASE}/{tier}/{name}"
            out["cot"].append(
                _write(remote.url_mirror_file(mirror, url), _cot_rows(name, tier, seed))
            )
    for key, rows in (
        ("mmlu_pro", _mmlu_pro_rows(mmlu_pro_per_category, seed)),
        ("ag_news", _ag_news_rows(ag_news_rows, seed)),
    ):
        src = REGISTRY[key]
        path = mirror / "hf" / src.hub_id / (src.config or "default") / f"{src.split}.jsonl"
        out[key].append(_write(path, rows))
    return out
