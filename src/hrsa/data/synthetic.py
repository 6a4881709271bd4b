"""Deterministic offline generators that stand in for the paper's datasets in the default config.

Every generator takes ``n`` and ``seed`` and returns the same records for the same arguments on
any machine (only :class:`random.Random` is used). The texts are small on purpose: tiny models
learn them in seconds, yet they keep the structure that matters to the analysis (step-by-step
arithmetic traces with a correctness label, multiple-choice questions with a category,
four-topic labelled sentences like AG News, and dialogue-style text for the SFT control).
"""

from __future__ import annotations

import random

# Four topics, like AG News's World / Sports / Business / Sci-Tech.
TOPICS: dict[str, list[str]] = {
    "world": "nation minister election border treaty capital embassy summit parliament rebels".split(),
    "sports": "match team goal league coach season striker final tournament referee".split(),
    "business": "market shares profit bank merger investor quarter revenue stocks economy".split(),
    "science": "software chip research space robot network computer galaxy virus laboratory".split(),
}
TOPIC_NAMES = list(TOPICS)
FILLER = "the a of in on with after before today new report says said will has from".split()
VERBS = "rises falls wins loses opens closes plans warns signs announces reaches".split()

DIALOGUE_OPENERS = [
    "User: can you help me write a short note?",
    "User: please summarise this paragraph for me.",
    "User: what is a good name for a small cat?",
    "User: tell me a story about a river.",
    "User: how do I cook rice?",
]
DIALOGUE_WORDS = "sure here is a short friendly answer that you can use thanks glad to help".split()


def _sentence(rng: random.Random, topic: str, n_words: int) -> str:
    words = []
    for _ in range(n_words):
        r = rng.random()
        if r < 0.45:
            words.append(rng.choice(TOPICS[topic]))
        elif r < 0.6:
            words.append(rng.choice(VERBS))
        else:
            words.append(rng.choice(FILLER))
    return " ".join(words).capitalize() + "."


def topic_sentences(n: int, seed: int = 0) -> list[dict]:
    """Labelled news-like sentences over four topics (AG News stand-in): id, text, label."""
    rng = random.Random(f"topic-{seed}")
    out = []
    for i in range(n):
        label = i % len(TOPIC_NAMES)
        text = " ".join(_sentence(rng, TOPIC_NAMES[label], rng.randint(6, 14)) for _ in range(2))
        out.append({"id": f"topic-{i}", "text": text, "label": label, "topic": TOPIC_NAMES[label]})
    rng.shuffle(out)
    return out


def general_text(n: int, seed: int = 0) -> list[str]:
    """Unlabelled general text used to pre-train the tiny base model."""
    rng = random.Random(f"general-{seed}")
    return [
        " ".join(
            _sentence(rng, rng.choice(TOPIC_NAMES), rng.randint(5, 12))
            for _ in range(rng.randint(1, 3))
        )
        for _ in range(n)
    ]


def arithmetic_traces(n: int, seed: int = 0, error_rate: float = 0.25) -> list[dict]:
    """Step-by-step arithmetic traces (CoT stand-in) with a correctness label and a difficulty tier.

    Hard problems have more steps. A fraction ``error_rate`` of traces contains a wrong step and
    carries ``correctness_label = 0``, so the CoT filter ``correctness_label == 1`` is exercised.
    """
    rng = random.Random(f"arith-{seed}")
    out = []
    for i in range(n):
        tier = ("easy", "moderate", "hard")[i % 3]
        n_steps = {"easy": 2, "moderate": 3, "hard": 5}[tier]
        value = rng.randint(2, 30)
        question = [str(value)]
        steps = []
        wrong = rng.random() < error_rate
        wrong_step = rng.randrange(n_steps) if wrong else -1
        for s in range(n_steps):
            op = rng.choice("+-*")
            operand = rng.randint(2, 9) if op == "*" else rng.randint(2, 40)
            new = (
                value + operand if op == "+" else value - operand if op == "-" else value * operand
            )
            shown = new + rng.choice([-3, -1, 1, 2]) if s == wrong_step else new
            steps.append(f"Step {s + 1}: {value} {op} {operand} = {shown}.")
            question.append(f"{op} {operand}")
            value = shown
        text = (
            f"Question: compute {' '.join(question)} from left to right. "
            "Let us think step by step. " + " ".join(steps) + f" Answer: {value}."
        )
        out.append(
            {"id": f"cot-{i}", "text": text, "correctness_label": 0 if wrong else 1, "tier": tier}
        )
    return out


def multiple_choice(n: int, seed: int = 0) -> list[dict]:
    """Four-option multiple-choice questions (MMLU-Pro stand-in): id, text, label, category."""
    rng = random.Random(f"mc-{seed}")
    out = []
    for i in range(n):
        topic = rng.choice(TOPIC_NAMES)
        options = [rng.choice(TOPICS[topic])]
        others = [t for t in TOPIC_NAMES if t != topic]
        options += [rng.choice(TOPICS[o]) for o in others]
        rng.shuffle(options)
        answer = next(j for j, o in enumerate(options) if o in TOPICS[topic])
        letters = "ABCD"
        text = (
            f"Question: which word belongs to the topic {topic}? "
            + " ".join(f"{letters[j]}. {o}" for j, o in enumerate(options))
            + f" Answer: {letters[answer]}."
        )
        out.append({"id": f"mc-{i}", "text": text, "label": answer, "category": topic})
    return out


def dialogue_text(n: int, seed: int = 0) -> list[str]:
    """Dialogue-style text, different from the arithmetic traces, for the tiny SFT control."""
    rng = random.Random(f"dialogue-{seed}")
    out = []
    for _ in range(n):
        reply = " ".join(rng.choice(DIALOGUE_WORDS) for _ in range(rng.randint(6, 14)))
        out.append(f"{rng.choice(DIALOGUE_OPENERS)} Assistant: {reply}.")
    return out


def tokenizer_corpus(seed: int = 0) -> list[str]:
    """Everything the tiny tokenizer should cover: all generators' texts."""
    return (
        general_text(1500, seed)
        + [r["text"] for r in arithmetic_traces(600, seed)]
        + [r["text"] for r in multiple_choice(400, seed)]
        + [r["text"] for r in topic_sentences(400, seed)]
        + dialogue_text(400, seed)
    )


GENERATORS = {
    "arithmetic_traces": arithmetic_traces,
    "multiple_choice": multiple_choice,
    "topic_sentences": topic_sentences,
}
