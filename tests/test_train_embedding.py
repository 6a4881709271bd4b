"""Mean-pooled embeddings, the instruction mask, the checkpoint format and the cached loss."""

import json

import pytest
import torch

from hrsa.data.contrastive import synthetic_examples
from hrsa.models import attention_is_bidirectional, load_backbone
from hrsa.train import (
    MeanPoolEmbedder,
    TrainConfig,
    build_loss,
    embed_texts,
    save_embedding_model,
    tokenize,
)
from hrsa.train.batches import collate

TEXTS = [
    "striker tournament news",
    "compute 14 + 38",
    "Report says the virus plans the galaxy after the summit today with the coach.",
    "a",
]


@pytest.fixture(scope="module")
def backbone(tiny_models):
    model, tok = load_backbone(tiny_models["base"], dtype="float32", device="cpu")
    return model, tok


def test_same_embedding_alone_padded_left_or_right(backbone):
    model, tok = backbone
    batch_right = embed_texts(model, tok, TEXTS, padding_side="right")
    batch_left = embed_texts(model, tok, TEXTS, padding_side="left")
    for i, text in enumerate(TEXTS):
        alone = embed_texts(model, tok, [text])[0]
        torch.testing.assert_close(batch_right[i], alone, atol=2e-5, rtol=0)
        torch.testing.assert_close(batch_left[i], alone, atol=2e-5, rtol=0)
    with_instruction = embed_texts(model, tok, TEXTS, instruction="Find it", padding_side="left")
    for i, text in enumerate(TEXTS):
        alone = embed_texts(model, tok, [text], instruction="Find it")[0]
        torch.testing.assert_close(with_instruction[i], alone, atol=2e-5, rtol=0)


@pytest.mark.parametrize("query", ["what is the border treaty", "5 apples", "(x)"])
def test_instruction_tokens_excluded_from_pool(backbone, query):
    model, tok = backbone
    instruction = "Given a claim, retrieve documents"
    prefix = f"Instruct: {instruction}\nQuery: "
    f = tokenize(tok, [query], instructions=instruction, max_length=64)
    pooled_ids = f["input_ids"][0][f["pool_mask"][0].bool()]
    # exactly the query's tokens (a leading space may be merged into the first query token)
    assert tok.decode(pooled_ids).strip() == query
    excluded = f["input_ids"][0][~f["pool_mask"][0].bool()]
    assert tok.decode(excluded).strip() == prefix.strip()
    # the embedding is the mean of the hidden states at those positions, in context
    with torch.no_grad():
        hidden = model(
            input_ids=f["input_ids"], attention_mask=f["attention_mask"]
        ).last_hidden_state[0]
    expected = torch.nn.functional.normalize(hidden[f["pool_mask"][0].bool()].mean(0), dim=-1)
    got = embed_texts(model, tok, [query], instruction=instruction)[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # with the flag off, every token is pooled
    f_all = tokenize(tok, [query], instructions=instruction, exclude_instruction=False)
    assert torch.equal(f_all["pool_mask"], f_all["attention_mask"])
    assert not torch.allclose(
        embed_texts(model, tok, [query], instruction=instruction, exclude_instruction=False)[0], got
    )


def test_bidirectional_survives_save_and_both_loaders(backbone, tmp_path):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    model, tok = backbone
    out = save_embedding_model(model, tok, tmp_path / "emb")
    assert json.loads((out / "config.json").read_text())["is_causal"] is False
    reloaded = AutoModel.from_pretrained(out)
    assert attention_is_bidirectional(reloaded)
    st = SentenceTransformer(str(out), device="cpu")
    assert [type(m).__name__ for m in st] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "mean"
    assert attention_is_bidirectional(st[0].auto_model)
    ours = embed_texts(model, tok, TEXTS)
    torch.testing.assert_close(torch.as_tensor(st.encode(TEXTS)), ours, atol=2e-5, rtol=0)
    torch.testing.assert_close(embed_texts(reloaded, tok, TEXTS), ours, atol=1e-6, rtol=0)


def _grads(model, loss_fn, features):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(features, None)
    loss.backward()
    return float(loss.detach()), {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }


def test_cached_and_uncached_losses_give_equal_gradients(tiny_models):
    model, tok = load_backbone(tiny_models["base"], dtype="float32", device="cpu")
    model.train()
    embedder = MeanPoolEmbedder(model)
    examples = [e for e in synthetic_examples(8, seed=0) if e.source == "synthetic_search"]
    features = collate(
        examples,
        tok,
        num_negatives=3,
        template="Instruct: {instruction}\nQuery: ",
        max_length=48,
        exclude_instruction=True,
    )
    plain = build_loss(embedder, TrainConfig(gradient_cache=False))
    cached = build_loss(embedder, TrainConfig(gradient_cache=True, mini_batch_size=3))
    loss_a, grads_a = _grads(model, plain, features)
    loss_b, grads_b = _grads(model, cached, features)
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], atol=1e-6, rtol=1e-4, msg=name)
    # the loss is InfoNCE at temperature 0.02 over all positives and hard negatives (no q-q terms)
    with torch.no_grad():
        q, *docs = [embedder(f)["sentence_embedding"] for f in features]
        logits = q @ torch.cat(docs).T / 0.02
        expected = torch.nn.functional.cross_entropy(logits, torch.arange(len(q)))
    assert loss_a == pytest.approx(float(expected), rel=1e-5)


def test_instruction_template_on_queries_only(backbone):
    _, tok = backbone
    examples = synthetic_examples(2, seed=0)[:2]
    columns = collate(
        examples,
        tok,
        num_negatives=3,
        template="Instruct: {instruction}\nQuery: ",
        max_length=64,
        exclude_instruction=True,
    )
    assert len(columns) == 5  # queries, positives, 3 hard negatives
    queries, *passages = columns
    assert tok.decode(queries["input_ids"][0]).startswith(
        f"Instruct: {examples[0].instruction}\nQuery: "
    )
    assert (queries["pool_mask"].sum(1) < queries["attention_mask"].sum(1)).all()
    for col in passages:
        assert not tok.decode(col["input_ids"][0]).startswith("Instruct:")
        assert torch.equal(col["pool_mask"], col["attention_mask"])
