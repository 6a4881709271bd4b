"""Small offline mteb tasks built from the synthetic generators: the "HRSA-Local" benchmark.

Four task types, as in MTEB (imports mteb; load lazily):

* ``HRSAArithmeticRetrieval`` (Retrieval, nDCG@10): the question of an arithmetic trace retrieves
  its worked solution among the solutions of the same difficulty tier; one subset per tier
  (easy / moderate / hard), so the score is a mean over subsets like BRIGHT's;
* ``HRSATopicClassification`` (Classification, accuracy): logistic regression on embeddings of
  four-topic news-like sentences (an AG News stand-in);
* ``HRSATopicClustering`` (Clustering, V-measure): the same kind of sentences clustered by topic;
* ``HRSATopicSTS`` (STS, Spearman of cosine similarities): sentence pairs whose gold similarity
  is graded by how many words the second sentence keeps from the first and whether the donor of
  the replaced words shares its topic.

The data are deterministic (fixed generator seeds, distinct from the training data's) and small,
so one model evaluates on all four in seconds on a CPU.
"""

from __future__ import annotations

import random
from typing import Any

from datasets import Dataset, DatasetDict
from mteb import Benchmark
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.clustering import AbsTaskClustering
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata

from ..data import synthetic
from .names import LOCAL_BENCHMARK

#: Generator seeds of the evaluation data (the training data use small seeds).
DATA_SEED = 1016
TIERS = ("easy", "moderate", "hard")

_COMMON: dict[str, Any] = dict(
    reference=None,
    category="t2t",
    modalities=["text"],
    eval_splits=["test"],
    date=("2026-01-01", "2026-01-01"),
    domains=["Written"],
    task_subtypes=[],
    license="cc-by-4.0",
    annotations_creators="derived",
    dialect=[],
    sample_creation="created",
    bibtex_citation="",
)


def _metadata(name: str, task_type: str, main_score: str, description: str, langs) -> TaskMetadata:
    return TaskMetadata(
        name=name,
        type=task_type,
        main_score=main_score,
        description=description,
        dataset={"path": f"hrsa/local/{name}", "revision": "1"},
        eval_langs=langs,
        **_COMMON,
    )


# ------------------------------------------------------------------ data (plain python, no mteb)


def split_trace(text: str) -> tuple[str, str]:
    """An arithmetic trace's question (up to "step by step.") and its worked solution."""
    marker = "Let us think step by step."
    head, _, tail = text.partition(marker)
    return (head + marker).strip(), tail.strip()


def retrieval_data(n_per_tier: int = 80, seed: int = DATA_SEED) -> dict[str, dict[str, list]]:
    """Per tier: queries (question), corpus (solutions of that tier) and qrels (own solution)."""
    traces = synthetic.arithmetic_traces(n_per_tier * len(TIERS), seed, error_rate=0.0)
    out = {tier: {"queries": [], "corpus": [], "qrels": {}} for tier in TIERS}
    for row in traces:
        question, solution = split_trace(row["text"])
        part = out[row["tier"]]
        qid, did = f"q-{row['id']}", f"d-{row['id']}"
        part["queries"].append({"id": qid, "text": question})
        part["corpus"].append({"id": did, "title": "", "text": solution})
        part["qrels"][qid] = {did: 1}
    return out


def classification_data(n_train: int = 320, n_test: int = 320, seed: int = DATA_SEED + 1):
    rows = synthetic.topic_sentences(n_train + n_test, seed)
    return {
        split: {"text": [r["text"] for r in part], "label": [r["label"] for r in part]}
        for split, part in (("train", rows[:n_train]), ("test", rows[n_train:]))
    }


def clustering_data(n: int = 400, seed: int = DATA_SEED + 2) -> dict[str, list]:
    rows = synthetic.topic_sentences(n, seed)
    return {"sentences": [r["text"] for r in rows], "labels": [r["topic"] for r in rows]}


def sts_data(n: int = 300, seed: int = DATA_SEED + 3) -> dict[str, list]:
    """Pairs (a, b): b is a with a fraction f of its words replaced by a donor sentence's words.

    Gold score = 4 (1 - f), + 1 if the donor has a's topic or nothing was replaced: 0 (every word
    replaced from another topic) .. 5 (identical).
    """
    rows = synthetic.topic_sentences(2 * n, seed)
    anchors, donors = rows[:n], rows[n:]
    rng = random.Random(f"hrsa-sts-{seed}")
    s1, s2, scores = [], [], []
    for a in anchors:
        fraction = rng.choice((0.0, 0.25, 0.5, 0.75, 1.0))
        same = rng.random() < 0.5
        pool = [d for d in donors if (d["label"] == a["label"]) == same]
        donor = rng.choice(pool)["text"].split()
        words = a["text"].split()
        for pos in rng.sample(range(len(words)), round(fraction * len(words))):
            words[pos] = donor[pos % len(donor)]
        s1.append(a["text"])
        s2.append(" ".join(words))
        scores.append(4.0 * (1.0 - fraction) + (1.0 if same or fraction == 0.0 else 0.0))
    return {"sentence1": s1, "sentence2": s2, "score": scores}


# ------------------------------------------------------------------ mteb tasks


class HRSAArithmeticRetrieval(AbsTaskRetrieval):
    metadata = _metadata(
        "HRSAArithmeticRetrieval",
        "Retrieval",
        "ndcg_at_10",
        "Retrieve the worked solution of an arithmetic question (synthetic, offline).",
        {tier: ["eng-Latn"] for tier in TIERS},
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        data = retrieval_data()
        self.dataset = {
            tier: {
                "test": RetrievalSplitData(
                    corpus=Dataset.from_list(data[tier]["corpus"]),
                    queries=Dataset.from_list(data[tier]["queries"]),
                    relevant_docs=data[tier]["qrels"],
                    top_ranked=None,
                )
            }
            for tier in self.hf_subsets
        }
        self.data_loaded = True


class HRSATopicClassification(AbsTaskClassification):
    metadata = _metadata(
        "HRSATopicClassification",
        "Classification",
        "accuracy",
        "Four-topic classification of news-like sentences (synthetic AG News stand-in).",
        ["eng-Latn"],
    )
    samples_per_label = 16
    n_experiments = 5

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        data = classification_data()
        self.dataset = DatasetDict({k: Dataset.from_dict(v) for k, v in data.items()})
        self.data_loaded = True


class HRSATopicClustering(AbsTaskClustering):
    metadata = _metadata(
        "HRSATopicClustering",
        "Clustering",
        "v_measure",
        "Cluster news-like sentences by topic (synthetic).",
        ["eng-Latn"],
    )
    max_fraction_of_documents_to_embed = None
    max_document_to_embed = None
    max_documents_per_cluster = 200
    n_clusters = 10

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        self.dataset = DatasetDict({"test": Dataset.from_dict(clustering_data())})
        self.data_loaded = True


class HRSATopicSTS(AbsTaskSTS):
    metadata = _metadata(
        "HRSATopicSTS",
        "STS",
        "cosine_spearman",
        "Graded similarity of sentence pairs built by word replacement (synthetic).",
        ["eng-Latn"],
    )
    min_score = 0
    max_score = 5

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        self.dataset = DatasetDict({"test": Dataset.from_dict(sts_data())})
        self.data_loaded = True


LOCAL_TASKS = (HRSAArithmeticRetrieval, HRSATopicClassification, HRSATopicClustering, HRSATopicSTS)


def local_benchmark() -> Benchmark:
    """The offline benchmark of the default config, as an mteb :class:`Benchmark`."""
    return Benchmark(
        name=LOCAL_BENCHMARK,
        tasks=[task() for task in LOCAL_TASKS],
        description="Small offline tasks of four MTEB task types built from hrsa's generators.",
    )
