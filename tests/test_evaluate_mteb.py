"""The evaluation wrapper through the real mteb.evaluate, on the offline HRSA-Local tasks."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from hrsa.errors import ConfigError, ModelError
from hrsa.evaluate.instructions import Instructions

mteb = pytest.importorskip("mteb")

from mteb.models.model_meta import ModelMeta  # noqa: E402

from hrsa.evaluate import encoder as encoder_module  # noqa: E402
from hrsa.evaluate.encoder import InstructionMeanPoolEncoder  # noqa: E402
from hrsa.evaluate.local_tasks import HRSAArithmeticRetrieval, HRSATopicSTS  # noqa: E402
from hrsa.evaluate.run import (  # noqa: E402
    IncompleteResultsError,
    benchmark_tasks,
    evaluate_benchmark,
    tidy_scores,
)

MAX_LENGTH = 128
ONE_BATCH = 1024


@pytest.fixture(scope="module")
def checkpoint(tiny_models, tmp_path_factory):
    """An embedding checkpoint as training writes it: ST (Transformer + mean + Normalize),
    loadable by AutoModel, ``is_causal: false`` in config.json."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    out = tmp_path_factory.mktemp("emb") / "seed0"
    transformer = Transformer(str(tiny_models["base"]), max_seq_length=MAX_LENGTH)
    transformer.auto_model.config.is_causal = False
    dim = transformer.get_embedding_dimension()
    SentenceTransformer(
        modules=[transformer, Pooling(dim, "mean", include_prompt=False), Normalize()]
    ).save(str(out))
    assert json.loads((out / "config.json").read_text())["is_causal"] is False
    return out


@pytest.fixture(scope="module")
def evaluated(checkpoint, tmp_path_factory):
    """One run of our wrapper on HRSA-Local without instructions: (cache dir, tidy CSV).

    One batch per encode call: both routes then compute bit-identical embeddings (in batches of
    16 they sort ties differently and differ by float noise ~1e-8, enough to flip a borderline
    classification prediction).
    """
    root = tmp_path_factory.mktemp("mteb")
    df = evaluate_benchmark(
        checkpoint,
        cache_dir=root / "cache",
        scores_csv=root / "scores.csv",
        benchmark="HRSA-Local",
        model_name="hrsa/test-emb-seed0",
        prompts=None,
        batch_size=ONE_BATCH,
        max_length=MAX_LENGTH,
    )
    return root, df


def test_wrapper_matches_plain_sentence_transformers_route(checkpoint, evaluated):
    from sentence_transformers import SentenceTransformer

    _, ours = evaluated
    assert list(ours.columns[:4]) == ["benchmark", "task", "subset", "main_score"]
    assert (ours["status"] == "ok").all()
    assert set(ours["task_type"]) == {"Retrieval", "Classification", "Clustering", "STS"}
    result = mteb.evaluate(
        SentenceTransformer(str(checkpoint)),
        benchmark_tasks("HRSA-Local"),
        cache=None,
        encode_kwargs={"batch_size": ONE_BATCH},
        show_progress_bar=False,
        co2_tracker=False,
    )
    theirs = {
        (tr.task_name, e["hf_subset"]): e["main_score"]
        for tr in result.task_results
        for e in tr.scores["test"]
    }
    assert len(theirs) == len(ours) == 6  # 3 retrieval tiers + 3 single-subset tasks
    for row in ours.itertuples():
        # ours are read back from mteb's files, which round to 6 decimals
        assert row.main_score == pytest.approx(theirs[(row.task, row.subset)], abs=1e-6), row


def test_batched_embeddings_match_sentence_transformers(checkpoint):
    from sentence_transformers import SentenceTransformer

    from hrsa.evaluate.local_tasks import classification_data

    texts = classification_data()["test"]["text"][:64]
    model = InstructionMeanPoolEncoder(
        checkpoint, name="hrsa/b", batch_size=16, max_length=MAX_LENGTH
    )
    ours = model.encode(
        [{"text": texts}], task_metadata=HRSATopicSTS.metadata, hf_split="test", hf_subset="default"
    )
    theirs = SentenceTransformer(str(checkpoint)).encode(texts, batch_size=16)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_instructions_reach_queries_and_never_documents(checkpoint, monkeypatch, tmp_path):
    calls = []
    real = encoder_module.embed_texts

    def spy(model, tokenizer, texts, **kwargs):
        calls.append((list(texts), kwargs["instruction"], kwargs["template"]))
        return real(model, tokenizer, texts, **kwargs)

    monkeypatch.setattr(encoder_module, "embed_texts", spy)
    ins = Instructions(
        default="default instruction",
        tasks={"HRSAArithmeticRetrieval": {"hard": "hard tier", "default": "other tiers"}},
    )
    model = InstructionMeanPoolEncoder(
        checkpoint, name="hrsa/test-instr", instructions=ins, max_length=MAX_LENGTH
    )
    tasks = [HRSAArithmeticRetrieval(), HRSATopicSTS()]
    mteb.evaluate(model, tasks, cache=None, show_progress_bar=False, co2_tracker=False)
    seen = {"query": set(), "document": set(), "sts": set()}
    for texts, instruction, template in calls:
        assert template == "Instruct: {instruction}\nQuery: "
        if all(t.startswith("Step 1:") for t in texts):
            seen["document"].add(instruction)
        elif all(t.startswith("Question:") for t in texts):
            seen["query"].add(instruction)
        else:
            seen["sts"].add(instruction)
    assert seen["document"] == {None}  # never an instruction on a document
    assert seen["query"] == {"hard tier", "other tiers"}  # per subset (tier)
    assert seen["sts"] == {"default instruction"}  # symmetric task: both sides are queries


def test_instruction_tokens_are_left_out_of_the_mean(checkpoint):
    ins = Instructions(tasks={"HRSATopicSTS": "Find related"})
    model = InstructionMeanPoolEncoder(
        checkpoint, name="hrsa/test-pool", instructions=ins, max_length=MAX_LENGTH
    )
    tok, lm = model.tokenizer, model.model
    prefix = ins.prefix("HRSATopicSTS")
    text = "related market news"
    ids = tok(prefix + text, return_tensors="pt")["input_ids"]
    n_prefix = len(tok(prefix.rstrip(" "))["input_ids"])
    # the premise: the template's trailing space merges into the first word, so tokenizing the
    # prefix alone (sentence-transformers' prompt length) counts one token too many
    assert len(tok(prefix)["input_ids"]) == n_prefix + 1
    assert tok.convert_ids_to_tokens(ids[0, n_prefix : n_prefix + 1].tolist())[0].startswith("Ġ")
    with torch.no_grad():
        hidden = lm(input_ids=ids).last_hidden_state[0]
    expected = torch.nn.functional.normalize(hidden[n_prefix:].mean(0), dim=0).numpy()
    got = model.encode(
        [{"text": [text]}],
        task_metadata=HRSATopicSTS.metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=None,
    )
    np.testing.assert_allclose(got[0], expected, atol=1e-5)
    assert np.linalg.norm(got[0]) == pytest.approx(1.0, abs=1e-5)


def test_missing_and_partial_result_files_are_reported(evaluated, tmp_path):
    root, _ = evaluated
    cache_dir = tmp_path / "cache"
    shutil.copytree(root / "cache", cache_dir)
    (result_dir,) = (cache_dir / "results").glob("*/*")
    (result_dir / "HRSATopicSTS.json").unlink()  # missing
    retrieval = result_dir / "HRSAArithmeticRetrieval.json"  # partial: one tier gone
    data = json.loads(retrieval.read_text())
    data["scores"]["test"] = [e for e in data["scores"]["test"] if e["hf_subset"] != "hard"]
    retrieval.write_text(json.dumps(data))
    (result_dir / "HRSATopicClustering.json").write_text('{"task_name": ')  # truncated
    tasks = benchmark_tasks("HRSA-Local")
    # only what the cache needs to find the files
    meta = ModelMeta.model_construct(name="hrsa/test-emb-seed0", revision="local")
    df = tidy_scores(mteb.ResultCache(cache_path=str(cache_dir)), meta, tasks, "HRSA-Local")
    status = {(r.task, r.subset): r.status for r in df.itertuples()}
    assert status[("HRSATopicSTS", "default")] == "missing_result"
    assert status[("HRSAArithmeticRetrieval", "hard")] == "missing_subset"
    assert status[("HRSAArithmeticRetrieval", "easy")] == "ok"
    assert status[("HRSATopicClustering", "default")] == "unreadable"
    assert status[("HRSATopicClassification", "default")] == "ok"
    assert df.loc[df["status"] != "ok", "main_score"].isna().all()


def test_failed_tasks_raise_after_writing_the_csv(checkpoint, monkeypatch, tmp_path):
    monkeypatch.setattr(mteb, "evaluate", lambda *a, **k: None)  # every task "failed"
    out = tmp_path / "scores.csv"
    kwargs = dict(cache_dir=tmp_path / "c", scores_csv=out, benchmark="HRSA-Local")
    with pytest.raises(IncompleteResultsError, match="6 scores missing"):
        evaluate_benchmark(checkpoint, model_name="hrsa/x", tasks=None, **kwargs)
    assert (pd.read_csv(out)["status"] == "missing_result").all()
    df = evaluate_benchmark(checkpoint, model_name="hrsa/x", allow_missing=True, **kwargs)
    assert df["main_score"].isna().all()


def test_backbone_gets_mean_pooling_and_bidirectional_attention(tiny_models, tmp_path):
    from hrsa.models import attention_is_bidirectional

    model = InstructionMeanPoolEncoder(tiny_models["base"], name="hrsa/bb", max_length=64)
    assert attention_is_bidirectional(model.model)
    emb = model.encode(
        [{"text": ["a b c", "market shares rise"]}],
        task_metadata=HRSATopicSTS.metadata,
        hf_split="test",
        hf_subset="default",
    )
    assert emb.shape == (2, 64) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # a checkpoint declaring another pooling is evaluated with it (a published model's own
    # format; tests/test_published_embeddings.py); one the evaluation cannot compute is refused
    other = tmp_path / "other"
    shutil.copytree(tiny_models["base"], other)
    (other / "modules.json").write_text(
        json.dumps([{"type": "x.Transformer", "path": ""}, {"type": "x.Pooling", "path": "1_P"}])
    )
    (other / "1_P").mkdir()
    (other / "1_P" / "config.json").write_text(json.dumps({"pooling_mode": "lasttoken"}))
    assert InstructionMeanPoolEncoder(other, name="hrsa/other").format.pooling == "lasttoken"
    (other / "1_P" / "config.json").write_text(json.dumps({"pooling_mode": "weightedmean"}))
    with pytest.raises(ModelError, match="weightedmean"):
        InstructionMeanPoolEncoder(other, name="hrsa/bad")


def test_task_restriction_and_seed():
    (task,) = benchmark_tasks("HRSA-Local", ["HRSATopicSTS"], seed=7)
    assert task.metadata.name == "HRSATopicSTS" and task.seed == 7
    with pytest.raises(ConfigError, match="evaluation.tasks.HRSA-Local"):
        benchmark_tasks("HRSA-Local", ["NoSuchTask"])
    with pytest.raises(ConfigError, match="unknown benchmark"):
        benchmark_tasks("MTEB(Cod, v1)")


def test_local_data_are_deterministic_and_well_formed():
    from hrsa.evaluate.local_tasks import TIERS, classification_data, retrieval_data, sts_data

    assert retrieval_data() == retrieval_data() and sts_data() == sts_data()
    retrieval = retrieval_data()
    for tier in TIERS:
        part = retrieval[tier]
        assert len(part["queries"]) == len(part["corpus"]) == len(part["qrels"]) == 80
        assert all(q["text"].startswith("Question:") for q in part["queries"])
        assert all(d["text"].startswith("Step 1:") for d in part["corpus"])
    sts = sts_data()
    assert min(sts["score"]) == 0.0 and max(sts["score"]) == 5.0
    for a, b, score in zip(sts["sentence1"], sts["sentence2"], sts["score"], strict=True):
        assert score != 5.0 or a == b
    data = classification_data()
    assert set(data["train"]["label"]) == set(data["test"]["label"]) == {0, 1, 2, 3}
    assert not set(data["train"]["text"]) & set(data["test"]["text"])
