"""Backbone loading, attention modes and the tiny offline builder."""

import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from hrsa.errors import ConfigError, ModelError
from hrsa.models import (
    attention_is_bidirectional,
    load_backbone,
    set_attention,
    tokenizer_fingerprint,
)
from hrsa.tiny import build_tiny


def _first_token_state(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0, 0]


@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_later_token_changes_earlier_state_only_when_bidirectional(tiny_models, mode):
    model, _ = load_backbone(tiny_models["base"], attention=mode, device="cpu")
    ids = torch.tensor([[11, 25, 40, 52, 63, 70, 81]])
    changed = ids.clone()
    changed[0, -1] = 99
    moved = (_first_token_state(model, ids) - _first_token_state(model, changed)).abs().max()
    if mode == "bidirectional":
        assert moved > 1e-4
    else:
        assert moved == 0


def test_set_attention_switches_back_and_forth(tiny_models):
    model, _ = load_backbone(tiny_models["base"], attention="causal", device="cpu")
    assert not attention_is_bidirectional(model)
    set_attention(model, "bidirectional")
    assert attention_is_bidirectional(model)
    with pytest.raises(ModelError, match="attention must be one of"):
        set_attention(model, "sideways")


def test_missing_local_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_backbone(str(tmp_path / "no-such-model"), device="cpu")


def test_tiny_build_is_deterministic_and_reloads_offline(tmp_path):
    a = build_tiny(tmp_path / "a", recipe="base", seed=3, steps=2)
    b = build_tiny(tmp_path / "b", recipe="base", seed=3, steps=2)
    assert a["last_loss"] == b["last_loss"]
    ma, mb = AutoModel.from_pretrained(tmp_path / "a"), AutoModel.from_pretrained(tmp_path / "b")
    for (na, pa), (_, pb) in zip(ma.named_parameters(), mb.named_parameters(), strict=True):
        assert torch.equal(pa, pb), na
    assert json.loads((tmp_path / "a" / "hrsa_build.json").read_text())["recipe"] == "base"


def test_qwen3_style_builds_and_is_bidirectional(tmp_path):
    build_tiny(tmp_path / "q3", recipe="base", arch="qwen3", seed=0, steps=1)
    model, _ = load_backbone(tmp_path / "q3", attention="bidirectional", device="cpu")
    assert type(model).__name__ == "Qwen3Model"
    assert attention_is_bidirectional(model)


def test_fine_tuned_partner_keeps_the_tokenizer_and_changes_weights(tiny_models):
    tb = AutoTokenizer.from_pretrained(tiny_models["base"])
    tr = AutoTokenizer.from_pretrained(tiny_models["reason"])
    text = "Question: compute 12 + 7 from left to right. Step 1: 12 + 7 = 19. Answer: 19."
    assert (
        tb(text, add_special_tokens=False)["input_ids"]
        == tr(text, add_special_tokens=False)["input_ids"]
    )
    assert tokenizer_fingerprint(tb) == tokenizer_fingerprint(tr)
    wb = AutoModel.from_pretrained(tiny_models["base"]).embed_tokens.weight
    wr = AutoModel.from_pretrained(tiny_models["reason"]).embed_tokens.weight
    assert not torch.equal(wb, wr)


def test_fine_tune_recipe_needs_its_base(tmp_path):
    with pytest.raises(ConfigError, match="needs `init`"):
        build_tiny(tmp_path / "r", recipe="reason", init=None, steps=1)
    with pytest.raises(ConfigError, match="unknown tiny recipe"):
        build_tiny(tmp_path / "r", recipe="rlhf")


def test_embedding_recipe_is_a_sentence_transformer_with_word_overlap_geometry(tmp_path):
    """The tiny stand-in miner loads like Qwen3-Embedding (modules.json) and ranks by overlap."""
    from sentence_transformers import SentenceTransformer

    from hrsa.tiny import build_tiny

    build_tiny(tmp_path / "miner", recipe="embedding", seed=0, hidden_size=32)
    assert (tmp_path / "miner" / "modules.json").is_file()
    model = SentenceTransformer(str(tmp_path / "miner"), device="cpu")
    emb = model.encode(
        ["the market rallied today", "the market rallied", "a storm hit the coast"],
        normalize_embeddings=False,
    )
    sims = emb @ emb.T
    assert abs(float(sims[0, 0]) - 1.0) < 1e-5  # normalised by the model itself
    assert sims[0, 1] > sims[0, 2] + 0.2
