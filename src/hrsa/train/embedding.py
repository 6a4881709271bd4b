"""Mean-pooled sentence embeddings from a (bidirectional) decoder, and the checkpoint format.

One function, :func:`embed_texts`, computes the embeddings everywhere they are needed (training,
mining with a backbone, evaluation): the last hidden state, averaged over the text's tokens with
the instruction's tokens left out when ``exclude_instruction`` is set, then L2-normalised.

Which tokens belong to the instruction is decided per text from the tokenizer's character
offsets: the query is tokenized *together* with its instruction prefix (as it is at inference),
and the leading tokens that end inside the prefix are the instruction's. A token that straddles
the boundary (byte-level BPE merges the template's trailing space into the first query word)
belongs to the query. This is exact for every row of a batch, whatever the padding side; a single
per-batch "prompt length" (what sentence-transformers' ``Pooling(include_prompt=False)`` uses) is
not, because the boundary merge depends on the query's first character.

Position ids are computed from the attention mask, so a text gets the same embedding with left
or right padding and alone or in a padded batch.

A saved embedding model (:func:`save_embedding_model`) is a directory that loads with
``transformers.AutoModel`` (``is_causal: false`` in config.json) and with
``sentence_transformers.SentenceTransformer`` (Transformer + mean Pooling + Normalize).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.contrastive import DEFAULT_TEMPLATE
from ..errors import ModelError

log = logging.getLogger("hrsa.train")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens in fp32: sum_t m_t h_t / sum_t m_t. Rows with no token give 0."""
    m = mask.to(torch.float32).unsqueeze(-1)
    return (hidden.to(torch.float32) * m).sum(1) / m.sum(1).clamp(min=1.0)


def pool_tokens(hidden: torch.Tensor, pool_mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Pool token states ``(B, T, D)`` over ``pool_mask`` in fp32, as sentence-transformers'
    ``Pooling`` modes do: ``mean`` (the recipe), ``lasttoken`` (the last pooled token), ``cls``
    (the first token, whatever the mask) or ``max`` (feature-wise over pooled tokens)."""
    if mode == "mean":
        return mean_pool(hidden, pool_mask)
    h = hidden.to(torch.float32)
    if mode == "cls":
        return h[:, 0]
    m = pool_mask.bool()
    if mode == "lasttoken":
        positions = torch.arange(m.shape[1], device=m.device).expand_as(m)
        last = torch.where(m, positions, torch.zeros_like(positions)).amax(1)
        return h[torch.arange(h.shape[0], device=h.device), last]
    if mode == "max":
        return h.masked_fill(~m.unsqueeze(-1), -1e9).amax(1)
    raise ModelError(f"unknown pooling mode {mode!r}; expected mean, lasttoken, cls or max")


def tokenize(
    tokenizer,
    texts: Sequence[str],
    *,
    instructions: str | Sequence[str] | None = None,
    template: str = DEFAULT_TEMPLATE,
    max_length: int = 512,
    exclude_instruction: bool = True,
    padding_side: str | None = None,
) -> dict[str, torch.Tensor]:
    """Tokenize ``texts`` (queries get ``template.format(instruction=...)`` prepended).

    Returns ``input_ids``, ``attention_mask`` and ``pool_mask`` (the tokens averaged by the mean
    pooling: the attention mask without the instruction's tokens when ``exclude_instruction``).
    """
    texts = list(texts)
    if isinstance(instructions, str) or instructions is None:
        instructions = [instructions or ""] * len(texts)
    if len(instructions) != len(texts):
        raise ValueError(f"{len(instructions)} instructions for {len(texts)} texts")
    prefixes = [template.format(instruction=i) if i else "" for i in instructions]
    joined = [p + t for p, t in zip(prefixes, texts, strict=True)]
    need_offsets = exclude_instruction and any(prefixes)
    kwargs = dict(padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    if padding_side is not None:
        kwargs["padding_side"] = padding_side
    if need_offsets:
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError(
                "excluding instruction tokens needs a fast tokenizer (character offsets)"
            )
        kwargs["return_offsets_mapping"] = True
    enc = tokenizer(joined, **kwargs)
    attention = enc["attention_mask"]
    pool = attention.clone()
    if need_offsets:
        offsets = enc.pop("offset_mapping")
        for row, prefix in enumerate(prefixes):
            if not prefix:
                continue
            real = attention[row].nonzero().flatten()
            ends = offsets[row, real, 1]
            # leading run of real tokens that end inside the prefix (specials have offsets (0, 0))
            inside = ends <= len(prefix)
            n_instr = int(inside.long().cumprod(0).sum())
            pool[row, real[:n_instr]] = 0
            if n_instr == len(real):
                log.warning(
                    "a query is empty after truncation to %d tokens; pooling its "
                    "instruction instead",
                    max_length,
                )
                pool[row] = attention[row]
    return {"input_ids": enc["input_ids"], "attention_mask": attention, "pool_mask": pool}


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row, whatever the padding side."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class MeanPoolEmbedder(nn.Module):
    """A decoder backbone + masked mean pooling + L2 normalisation.

    ``forward(features)`` takes the dict from :func:`tokenize` (``pool_mask`` optional) and
    returns ``{"sentence_embedding": (B, D) fp32}``, the interface sentence-transformers' losses
    expect from a model. The backbone may run under autocast; pooling and normalisation are fp32.
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids, attention = features["input_ids"], features["attention_mask"]
        hidden = self.backbone(
            input_ids=ids,
            attention_mask=attention,
            position_ids=position_ids_from_mask(attention),
            use_cache=False,
        ).last_hidden_state
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            pooled = mean_pool(hidden, features.get("pool_mask", attention))
            return {"sentence_embedding": F.normalize(pooled, dim=-1)}

    def __getitem__(self, index: int) -> nn.Module:
        # sentence-transformers' cached losses look at model[0] to reject static embeddings.
        if index != 0:
            raise IndexError(index)
        return self.backbone


@torch.no_grad()
def embed_texts(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    instruction: str | Sequence[str] | None = None,
    template: str = DEFAULT_TEMPLATE,
    exclude_instruction: bool = True,
    max_length: int = 512,
    batch_size: int = 32,
    normalize: bool = True,
    padding_side: str | None = None,
    pooling: str = "mean",
) -> torch.Tensor:
    """Mean-pooled embeddings ``(N, D)`` (fp32, on CPU) of ``texts`` with a backbone or embedder.

    ``instruction`` (one for all, or one per text) is formatted with ``template`` and prepended;
    its tokens are left out of the mean when ``exclude_instruction``. Texts are batched by length.
    ``pooling`` is another mode of :func:`pool_tokens` for models that declare one (a published
    checkpoint); training always uses the mean.
    """
    texts = list(texts)
    if isinstance(instruction, str) or instruction is None:
        instruction = [instruction or ""] * len(texts)
    instruction = list(instruction)
    embedder = model if isinstance(model, MeanPoolEmbedder) else MeanPoolEmbedder(model)
    was_training = embedder.training
    embedder.eval()
    device = next(embedder.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]) - len(instruction[i]))
    out = torch.empty(len(texts), _hidden_size(embedder.backbone), dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        features = tokenize(
            tokenizer,
            [texts[i] for i in idx],
            instructions=[instruction[i] for i in idx],
            template=template,
            max_length=max_length,
            exclude_instruction=exclude_instruction,
            padding_side=padding_side,
        )
        features = {k: v.to(device) for k, v in features.items()}
        hidden = embedder.backbone(
            input_ids=features["input_ids"],
            attention_mask=features["attention_mask"],
            position_ids=position_ids_from_mask(features["attention_mask"]),
            use_cache=False,
        ).last_hidden_state
        pooled = pool_tokens(hidden, features["pool_mask"], pooling)
        out[idx] = (F.normalize(pooled, dim=-1) if normalize else pooled).cpu()
    embedder.train(was_training)
    return out


def _hidden_size(backbone: nn.Module) -> int:
    cfg = backbone.config
    return int(getattr(cfg, "hidden_size", None) or cfg.get_text_config().hidden_size)


def load_embedding_model(
    path: str | os.PathLike,
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    attention: str = "bidirectional",
):
    """``(model, tokenizer)`` of a trained embedding model (or any backbone) for :func:`embed_texts`.

    The attention mode is applied and checked behaviourally (see :func:`hrsa.models.load_backbone`).
    """
    from ..models import load_backbone

    return load_backbone(path, revision=revision, dtype=dtype, attention=attention, device=device)


# --------------------------------------------------------------------------------------------
# Checkpoint format (docs/contracts.md, contract 3)
# --------------------------------------------------------------------------------------------


def write_sentence_transformers_files(
    out_dir: str | os.PathLike,
    dim: int,
    *,
    include_prompt: bool = False,
    prompts: dict | None = None,
) -> None:
    """The module files that make a Hugging Face model directory a SentenceTransformer:
    Transformer (the directory itself) -> mean Pooling -> Normalize."""
    from sentence_transformers import __version__ as st_version
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    out = Path(out_dir)

    def qualname(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": qualname(Transformer)},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": qualname(Pooling)},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": qualname(Normalize)},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    (out / "sentence_bert_config.json").write_text(
        json.dumps(
            {
                "transformer_task": "feature-extraction",
                "modality_config": {
                    "text": {"method": "forward", "method_output_name": "last_hidden_state"}
                },
                "module_output_name": "token_embeddings",
            },
            indent=2,
        )
    )
    (out / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "__version__": {"sentence_transformers": st_version, "pytorch": torch.__version__},
                "model_type": "SentenceTransformer",
                "prompts": prompts or {"query": "", "document": ""},
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
    )
    for sub, module in (
        ("1_Pooling", Pooling(dim, "mean", include_prompt=include_prompt)),
        ("2_Normalize", Normalize()),
    ):
        (out / sub).mkdir(exist_ok=True)
        module.save(str(out / sub))


def save_embedding_model(
    backbone: nn.Module,
    tokenizer,
    out_dir: str | os.PathLike,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float32,
    include_prompt: bool = False,
    bidirectional: bool = True,
) -> Path:
    """Write the checkpoint format: HF weights + config (``is_causal: false``) + tokenizer + ST files.

    ``state_dict`` (e.g. gathered from FSDP shards) replaces the backbone's own; weights are cast
    to ``dtype`` and the stored config says so.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = state_dict if state_dict is not None else backbone.state_dict()
    state = {
        k: v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()
        for k, v in state.items()
    }
    previous = getattr(backbone.config, "dtype", None)
    backbone.config.dtype = dtype
    try:
        backbone.save_pretrained(out, state_dict=state, safe_serialization=True)
    finally:
        backbone.config.dtype = previous
    tokenizer.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    if bidirectional and config.get("is_causal") is not False:
        raise ModelError(
            f"{out}: saved config.json lacks is_causal: false; the model was not "
            "switched to bidirectional attention before saving"
        )
    write_sentence_transformers_files(out, _hidden_size(backbone), include_prompt=include_prompt)
    return out
