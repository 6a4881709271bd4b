"""The offline training sets: four deterministic "source datasets" (``source: synthetic``).

Built from the generated corpus of :mod:`hrsa.data.synthetic`. Two ship near-miss negatives
(texts that share most of the positive's words but not its meaning), two are bare query-positive
pairs (:data:`SYNTHETIC_ANNOTATED`), so both branches of mining run on a laptop.
"""

from __future__ import annotations

import random

from ..config import schema_default
from ..errors import config_error
from . import synthetic
from .contrastive_examples import ContrastiveExample

#: rows per synthetic source when ``training.data.n_per_source`` is not given (a derived default:
#: the schema gives the key no default, as it applies to ``source: synthetic`` only)
N_PER_SOURCE = 64
#: the seed of the generated rows: the schema's ``training.data.seed`` (its one owner)
DEFAULT_SEED = schema_default("training.data.seed")

SYNTHETIC_INSTRUCTIONS = {
    "synthetic_search": "Given a short news search query, retrieve the report that mentions both keywords",
    "synthetic_arithmetic": "Given an arithmetic question, retrieve the worked solution with the correct result",
    "synthetic_paraphrase": "Given a sentence, retrieve a sentence with the same meaning",
    "synthetic_claims": "Given a claim, retrieve the report that supports the claim",
}
SYNTHETIC_SOURCES = list(SYNTHETIC_INSTRUCTIONS)
# Which synthetic sources ship annotated negatives (like NLI or MSMARCO); the other two are
# query-positive pairs (like NQ or SQuAD), so the default run mines for them and keeps the others.
SYNTHETIC_ANNOTATED = {
    "synthetic_search": False,
    "synthetic_arithmetic": True,
    "synthetic_paraphrase": True,
    "synthetic_claims": False,
}


def _filler(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(synthetic.FILLER) for _ in range(n)]


def _sentence_with(rng: random.Random, words: list[str], n_filler: int = 4) -> str:
    body = words + _filler(rng, n_filler)
    rng.shuffle(body)
    return " ".join(body).capitalize() + "."


def _search(rng: random.Random) -> tuple[str, str, list[str]]:
    topic = rng.choice(synthetic.TOPIC_NAMES)
    k1, k2, k3, k4 = rng.sample(synthetic.TOPICS[topic], 4)
    verb = rng.choice(synthetic.VERBS)
    other = rng.choice([t for t in synthetic.TOPIC_NAMES if t != topic])
    query = f"{k1} {k2} news"
    positive = _sentence_with(rng, [k1, k2, verb])
    negatives = [
        _sentence_with(rng, [k1, k3, verb]),  # shares one keyword and the verb
        _sentence_with(rng, [k4, k2, verb]),  # shares the other keyword
        _sentence_with(rng, rng.sample(synthetic.TOPICS[other], 2) + [verb]),
    ]
    return query, positive, negatives


def _arithmetic(rng: random.Random) -> tuple[str, str, list[str]]:
    a, b = rng.randint(2, 60), rng.randint(2, 40)
    op = rng.choice("+-*")
    if op == "*":
        b = rng.randint(2, 9)
    value = a + b if op == "+" else a - b if op == "-" else a * b
    other_op = rng.choice([o for o in "+-*" if o != op])
    other_value = a + b if other_op == "+" else a - b if other_op == "-" else a * b
    query = f"compute {a} {op} {b}"
    off = rng.choice([-2, -1, 1, 3])
    positive = f"{a} {op} {b} = {value}"
    negatives = [
        f"{a} {op} {b} = {value + off}",  # the same problem, a wrong result
        f"{a} {other_op} {b} = {other_value}",  # another operation on the same numbers
        f"{b} {op} {a + 1} = {value + b}",
    ]
    return query, positive, negatives


def _paraphrase(rng: random.Random) -> tuple[str, str, list[str]]:
    topic = rng.choice(synthetic.TOPIC_NAMES)
    content = rng.sample(synthetic.TOPICS[topic], 3) + [rng.choice(synthetic.VERBS)]
    other = rng.choice([t for t in synthetic.TOPIC_NAMES if t != topic])
    query = _sentence_with(rng, list(content), 3)
    positive = _sentence_with(rng, list(content), 5)
    swapped = list(content)
    swapped[rng.randrange(3)] = rng.choice([w for w in synthetic.TOPICS[topic] if w not in content])
    swapped2 = list(content)
    swapped2[:2] = rng.sample(synthetic.TOPICS[other], 2)
    negatives = [
        _sentence_with(rng, swapped, 5),
        _sentence_with(rng, swapped2, 5),
        _sentence_with(
            rng,
            rng.sample([w for w in synthetic.TOPICS[topic] if w not in content], 3) + [content[-1]],
            5,
        ),
    ]
    return query, positive, negatives


def _claims(rng: random.Random) -> tuple[str, str, list[str]]:
    topic = rng.choice(synthetic.TOPIC_NAMES)
    subject, obj = rng.sample(synthetic.TOPICS[topic], 2)
    verb, wrong_verb = rng.sample(synthetic.VERBS, 2)
    query = f"The {subject} {verb} the {obj}."
    positive = f"Report says the {subject} {verb} the {obj} {rng.choice(['today', 'after', 'before'])} {rng.choice(synthetic.FILLER)}."
    negatives = [
        f"Report says the {subject} {wrong_verb} the {obj} {rng.choice(['today', 'after', 'before'])}.",
        f"Report says the {obj} {verb} the {subject} {rng.choice(['today', 'after', 'before'])}.",
        f"Report says the {rng.choice([w for w in synthetic.TOPICS[topic] if w not in (subject, obj)])} {verb} the {obj}.",
    ]
    return query, positive, negatives


_GENERATORS = {
    "synthetic_search": _search,
    "synthetic_arithmetic": _arithmetic,
    "synthetic_paraphrase": _paraphrase,
    "synthetic_claims": _claims,
}


def synthetic_sources(sources=None) -> list[str]:
    """The synthetic sets asked for (default: all), each checked to exist."""
    sources = list(sources or SYNTHETIC_SOURCES)
    unknown = [s for s in sources if s not in _GENERATORS]
    if unknown:
        raise config_error(
            "training.data.sources",
            f"unknown synthetic source(s) {unknown}; known: {SYNTHETIC_SOURCES}",
        )
    return sources


def synthetic_examples(
    n_per_source: int = N_PER_SOURCE,
    seed: int = DEFAULT_SEED,
    sources: list[str] | None = None,
    *,
    declared_negatives: bool = False,
) -> list[ContrastiveExample]:
    """Deterministic offline examples: ``n_per_source`` per synthetic source dataset.

    Queries and positives are unique within a source (duplicates would be false in-batch
    negatives); every query has three near-miss negatives that share most of its positive's
    words. With ``declared_negatives`` the sources that :data:`SYNTHETIC_ANNOTATED` declares
    without annotated negatives come as bare query-positive pairs, as the workflow's training data
    has them (they are mined); the default keeps every generated negative (for trainer tests).
    """
    sources = synthetic_sources(sources)
    if n_per_source < 1:
        raise config_error("training.data.n_per_source", f"must be >= 1, got {n_per_source}")
    out = []
    for key in sources:
        rng = random.Random(f"contrastive-{seed}-{key}")
        seen_q, seen_p = set(), set()
        made = 0
        for _ in range(100 * n_per_source):
            query, positive, negatives = _GENERATORS[key](rng)
            if query in seen_q or positive in seen_p or positive in negatives:
                continue
            seen_q.add(query)
            seen_p.add(positive)
            if declared_negatives and not SYNTHETIC_ANNOTATED[key]:
                negatives = []
            out.append(
                ContrastiveExample(
                    query,
                    positive,
                    tuple(dict.fromkeys(negatives)),
                    SYNTHETIC_INSTRUCTIONS[key],
                    key,
                )
            )
            made += 1
            if made == n_per_source:
                break
        else:
            raise config_error(
                "training.data.n_per_source",
                f"cannot generate {n_per_source} distinct examples for {key!r}",
            )
    return out
