"""Backbones: load by hub id or local path, choose the attention mode, build tiny offline models.

Attention mode (DESIGN.md): ``bidirectional`` (as the authors ran it) or ``causal``. In
transformers >= 5.2 Qwen2/Qwen3 become bidirectional when ``config.is_causal`` is False (sdpa and
eager) and, for flash-attention-2, when the attention modules' ``is_causal`` is cleared too; both
are set here. ``AutoConfig.from_pretrained(..., is_causal=False)`` is silently ignored, which is why
:func:`set_attention` works on the loaded model and :func:`attention_is_bidirectional` checks the
behaviour instead of trusting a flag.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from .errors import ModelError

log = logging.getLogger("hrsa.models")

ATTENTION_MODES = ("bidirectional", "causal")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` means bf16 on a GPU and fp32 on CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; expected auto or one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def is_local(source: str | os.PathLike) -> bool:
    """A source is local if it is an existing path or written like one (./, /, ~)."""
    s = str(source)
    return os.path.exists(s) or s.startswith(("/", "./", "../", "~")) or s.count("/") > 1


def _check_source(source: str | os.PathLike) -> str:
    s = str(source)
    if is_local(s) and not (Path(s).expanduser() / "config.json").is_file():
        raise ModelError(f"model path {s!r} does not exist or holds no config.json")
    return s


def set_attention(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """Switch a loaded decoder to ``causal`` or ``bidirectional`` attention (config + modules)."""
    if mode not in ATTENTION_MODES:
        raise ModelError(f"attention must be one of {ATTENTION_MODES}, got {mode!r}")
    causal = mode == "causal"
    configs = [model.config] + [
        getattr(model.config, name, None) for name in getattr(model.config, "sub_configs", {})
    ]
    for cfg in configs:
        if cfg is not None:
            cfg.is_causal = causal
    for module in model.modules():
        if hasattr(module, "is_causal") and isinstance(module.is_causal, bool):
            module.is_causal = causal
    return model


@torch.no_grad()
def attention_is_bidirectional(model: torch.nn.Module, vocab_size: int | None = None) -> bool:
    """Behavioural check: does changing the LAST token change the FIRST token's hidden state?"""
    vocab = vocab_size or model.config.vocab_size
    device = next(model.parameters()).device
    ids = torch.arange(5, 11, device=device).remainder(vocab).unsqueeze(0)
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 7) % vocab
    mask = torch.ones_like(ids)
    was_training = model.training
    model.eval()
    base = _backbone(model)
    a = base(input_ids=ids, attention_mask=mask).last_hidden_state[0, 0].float()
    b = base(input_ids=changed, attention_mask=mask).last_hidden_state[0, 0].float()
    model.train(was_training)
    return bool((a - b).abs().max() > 1e-5 * max(1.0, float(a.abs().max())))


def _backbone(model):
    """The decoder stack of a causal-LM wrapper, or the model itself."""
    return getattr(model, "model", model) if hasattr(model, "lm_head") else model


def load_tokenizer(source: str, revision: str | None = None):
    from transformers import AutoTokenizer

    src = _check_source(source)
    try:
        tok = AutoTokenizer.from_pretrained(src, revision=revision)
    except OSError as exc:
        raise ModelError(
            f"cannot load tokenizer {src!r} (revision {revision!r}): {exc}. If this is a hub id, "
            "prefetch it first (`snakemake prefetch` on a node with internet)."
        ) from exc
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_backbone(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    attention: str = "bidirectional",
    device: str = "auto",
):
    """Load ``(model, tokenizer)``: the decoder without its LM head, in eval mode.

    ``source`` is a hub id (resolved from the local Hugging Face cache when the Hub is offline)
    or a local directory. The attention mode is applied and verified behaviourally.
    """
    from transformers import AutoModel

    src = _check_source(source)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    try:
        model = AutoModel.from_pretrained(src, revision=revision, dtype=torch_dtype)
    except OSError as exc:
        raise ModelError(
            f"cannot load model {src!r} (revision {revision!r}): {exc}. If this is a hub id, "
            "prefetch it first (`snakemake prefetch` on a node with internet)."
        ) from exc
    tokenizer = load_tokenizer(src, revision)
    set_attention(model, attention)
    model.to(dev).eval()
    if attention_is_bidirectional(model) != (attention == "bidirectional"):
        raise ModelError(f"{src!r}: attention mode {attention!r} requested but not in effect")
    return model, tokenizer


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's full serialisation (vocabulary, merges, normaliser, specials)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    payload = (
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def resolved_revision(source: str, revision: str | None) -> str | None:
    """The commit a hub model resolved to (read from its cached config), or None for local paths."""
    if is_local(source):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(source, "config.json", revision=revision)
        if isinstance(path, str):
            return Path(path).parent.name
    except Exception:  # pragma: no cover - best effort
        pass
    return revision
