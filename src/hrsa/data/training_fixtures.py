"""Small local copies of the paper's 11 training sets, in exactly their declared schema.

:func:`write_training_mirror` writes a data mirror (layout of :mod:`hrsa.data.remote`) holding
every Table 7 source of :data:`hrsa.data.contrastive.REGISTRY` with exactly the fields its entry
declares - same names, same types, same record shape (JSON arrays for the
``embedding-training-data`` files, objects for the others) - and nothing else. The loaders read
them by the code path that reads the real copies; only the location differs.

The texts come from the generators of :mod:`hrsa.data.contrastive` and :mod:`hrsa.data.synthetic`
(English sets) and a small Chinese counterpart (DuReader, T2Ranking), so tiny offline models can
train on them: every query has a positive that shares its content words, and near-miss negatives.
Queries and positives are unique within a set. Sets the registry declares without annotated
negatives are written as bare pairs, so the mining branch runs on them.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path

from ..atomic import atomic_path
from ..errors import ConfigError
from . import contrastive as C
from . import remote, synthetic

ZH_TOPICS: dict[str, list[str]] = {
    "world": "国家 部长 选举 边境 条约 首都 使馆 峰会 议会 谈判".split(),
    "sports": "比赛 球队 进球 联赛 教练 赛季 前锋 决赛 锦标赛 裁判".split(),
    "business": "市场 股票 利润 银行 并购 投资者 季度 收入 经济 企业".split(),
    "science": "软件 芯片 研究 太空 机器人 网络 电脑 星系 病毒 实验室".split(),
}
ZH_VERBS = "上涨 下跌 获胜 失利 开放 关闭 计划 警告 签署 宣布 访问".split()
ZH_FILLER = "今天 新的 报道 消息 之后 之前 已经 将会 表示 据悉 目前 近日".split()

Triple = tuple[str, str, list[str]]


def _zh_sentence(rng: random.Random, words: list[str], n_filler: int = 3) -> str:
    body = words + [rng.choice(ZH_FILLER) for _ in range(n_filler)]
    rng.shuffle(body)
    return "".join(body) + "。"


def _zh_search(rng: random.Random) -> Triple:
    topic = rng.choice(list(ZH_TOPICS))
    k1, k2, k3, k4 = rng.sample(ZH_TOPICS[topic], 4)
    verb = rng.choice(ZH_VERBS)
    other = rng.choice([t for t in ZH_TOPICS if t != topic])
    query = f"{k1}{k2}的最新消息"
    positive = _zh_sentence(rng, [k1, k2, verb])
    negatives = [
        _zh_sentence(rng, [k1, k3, verb]),
        _zh_sentence(rng, [k4, k2, verb]),
        _zh_sentence(rng, rng.sample(ZH_TOPICS[other], 2) + [verb]),
    ]
    return query, positive, negatives


def _question(rng: random.Random) -> Triple:
    """A question-style query (NQ/TriviaQA/SQuAD-like) over the news corpus."""
    query, positive, negatives = C._search(rng)
    k1, k2 = query.split()[:2]
    return f"what happened to the {k1} and the {k2}?", positive, negatives


def _duplicate(rng: random.Random) -> Triple:
    """Two phrasings of one question (Quora-like)."""
    query, positive, negatives = C._paraphrase(rng)
    return (
        query.rstrip(".") + "?",
        positive.rstrip(".") + "?",
        [n.rstrip(".") + "?" for n in negatives],
    )


GENERATORS: dict[str, Callable[[random.Random], Triple]] = {
    "fever": C._claims,
    "natural_questions": _question,
    "nli": C._paraphrase,
    "msmarco": C._search,
    "quora": _duplicate,
    "mr_tydi": C._search,
    "dureader": _zh_search,
    "trivia_qa": C._arithmetic,
    "hotpot_qa": _question,
    "squad": _question,
    "t2ranking": _zh_search,
}


def _filler_passage(rng: random.Random, chinese: bool) -> str:
    if chinese:
        topic = rng.choice(list(ZH_TOPICS))
        return _zh_sentence(rng, rng.sample(ZH_TOPICS[topic], 3), 4)
    topic = rng.choice(synthetic.TOPIC_NAMES)
    return C._sentence_with(rng, rng.sample(synthetic.TOPICS[topic], 3), 5)


def _triples(key: str, n: int, seed: int) -> list[Triple]:
    rng = random.Random(f"training-mirror-{seed}-{key}")
    seen_q: set[str] = set()
    seen_p: set[str] = set()
    out: list[Triple] = []
    for _ in range(200 * n):
        query, positive, negatives = GENERATORS[key](rng)
        if query in seen_q or positive in seen_p or positive in negatives:
            continue
        seen_q.add(query)
        seen_p.add(positive)
        out.append((query, positive, list(dict.fromkeys(negatives))))
        if len(out) == n:
            return out
    raise ConfigError(f"cannot generate {n} distinct rows for the mirror copy of {key!r}")


def _record(entry: C.TrainingDataset, triple: Triple, rng: random.Random) -> dict:
    """One record with exactly the declared fields (in declared order)."""
    hub = entry.hub
    query, positive, negatives = triple
    role = {}
    for ours, theirs in hub.columns.items():
        for name in [theirs] if isinstance(theirs, str) else theirs:
            role[name] = ours
    pool = list(negatives)
    chinese = entry.language == "zh"

    def next_negative() -> str:
        while not pool:
            text = _filler_passage(rng, chinese)
            if text != positive:
                pool.append(text)
        return pool.pop(0)

    record = {}
    for name, kind in hub.schema.items():
        if role.get(name) == "query":
            value = query
        elif role.get(name) == "positive":
            value = [positive] if kind == C.STRINGS else positive
        else:  # a negatives field (mapped or not: the real source has it)
            value = [next_negative() for _ in range(3)] if kind == C.STRINGS else next_negative()
        record[name] = value
    return record


def _write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            with gzip.open(tmp, "wt", encoding="utf-8") as fh:
                fh.write(text)
        else:
            Path(tmp).write_text(text, encoding="utf-8")
    return path


def mirror_paths(mirror_dir: str | os.PathLike, key: str) -> list[Path]:
    """Where the mirror holds registry dataset ``key`` (one file per config)."""
    hub = C.REGISTRY[key].hub
    root = Path(mirror_dir) / "hf" / hub.path
    if hub.data_files:
        return [root / hub.data_files]
    return [root / (name or "default") / f"{hub.split}.jsonl" for name in hub.configs()]


def write_training_mirror(
    mirror_dir: str | os.PathLike, rows: Mapping[str, int], *, seed: int = 0
) -> dict[str, list[Path]]:
    """Write deterministic copies of the registry datasets named in ``rows`` into a data mirror.

    ``rows[key]`` rows are written for each dataset (a multi-config source such as Mr.TyDi's 11
    languages spreads them over its configs, at least one row each). Records carry exactly the
    fields the registry declares; datasets declared without annotated negatives carry none
    (their schema has no negative field). Returns the written paths per key.
    """
    unknown = sorted(set(rows) - set(C.REGISTRY))
    if unknown:
        raise ConfigError(f"write_training_mirror: unknown training datasets {unknown}")
    out: dict[str, list[Path]] = {}
    for key, n in rows.items():
        if int(n) < 1:
            raise ConfigError(f"write_training_mirror: rows for {key!r} must be >= 1, got {n}")
        entry = C.REGISTRY[key]
        paths = mirror_paths(mirror_dir, key)
        total = max(int(n), len(paths))
        rng = random.Random(f"training-mirror-negatives-{seed}-{key}")
        records = [_record(entry, t, rng) for t in _triples(key, total, seed)]
        if entry.hub.layout == "list":
            records = [list(r.values()) for r in records]
        out[key] = []
        for i, path in enumerate(paths):
            out[key].append(_write_jsonl(path, records[i :: len(paths)]))
        # the loader must find them where hrsa.data.remote looks
        if entry.hub.data_files:
            assert remote.hub_mirror_file(
                mirror_dir, entry.hub.path, data_files=entry.hub.data_files
            )
    return out
