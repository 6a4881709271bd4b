"""Backbones: load by hub id or local path, choose the attention mode, build tiny offline models.

Attention mode: ``bidirectional`` (as the authors ran it) or ``causal``, recorded in an activation
store's manifest and a trained model's config.json (docs/contracts.md, contracts 1 and 3). In
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
from dataclasses import dataclass, field
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


# --------------------------------------------------------------------------------------------
# Embedding models in sentence-transformers' format: what their files declare
# --------------------------------------------------------------------------------------------

#: Pooling modes the evaluation can compute (sentence-transformers' names).
POOLING_MODES = ("mean", "lasttoken", "cls", "max")
#: sentence-transformers' older Pooling config: one boolean per mode.
_LEGACY_POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
}


@dataclass(frozen=True)
class EmbeddingFormat:
    """How an embedding model turns token states into one vector, as its files declare it.

    The recipe (what :func:`hrsa.train.embedding.save_embedding_model` writes) is mean pooling
    without the prompt's tokens, then Normalize, and no fixed prompts (per-task instructions in
    the evaluation's template on queries only). ``declared`` is False for a directory without
    ``modules.json`` (a backbone LLM): the recipe is then assumed.
    """

    pooling: str = "mean"
    include_prompt: bool = False
    normalize: bool = True
    prompts: dict = field(default_factory=dict)
    default_prompt_name: str | None = None
    transformer_path: str = ""
    declared: bool = False

    @property
    def query_prompt(self) -> str:
        """The fixed prefix the model declares for queries ("" when none)."""
        name = "query" if "query" in self.prompts else self.default_prompt_name
        return str(self.prompts.get(name) or "") if name else ""

    @property
    def document_prompt(self) -> str:
        """The fixed prefix the model declares for documents ("" when none)."""
        for name in ("document", "passage", "corpus"):
            if self.prompts.get(name):
                return str(self.prompts[name])
        return ""

    def differences(self) -> list[str]:
        """How the declared format departs from the training recipe (empty: it is the recipe)."""
        out = []
        if self.pooling != "mean":
            out.append(f"pooling {self.pooling!r} (recipe: mean)")
        if self.include_prompt:
            out.append("prompt tokens included in the pooling (recipe: excluded)")
        if not self.normalize:
            out.append("no Normalize module (recipe: normalised)")
        if self.query_prompt:
            out.append(f"query prompt {self.query_prompt!r}")
        if self.document_prompt:
            out.append(f"document prompt {self.document_prompt!r}")
        if self.transformer_path:
            out.append(f"transformer in sub-directory {self.transformer_path!r}")
        return out

    def describe(self) -> str:
        what = (
            f"pooling={self.pooling}, include_prompt={self.include_prompt}, "
            f"normalize={self.normalize}, prompts={self.prompts or {}}"
        )
        return what if self.declared else f"{what} (no modules.json: the recipe is assumed)"


def _json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def _pooling_mode(config: dict, where: Path) -> str:
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [name for flag, name in _LEGACY_POOLING_FLAGS.items() if config.get(flag)]
        mode = modes if len(modes) != 1 else modes[0]
    if isinstance(mode, list):
        if len(mode) != 1:
            raise ModelError(f"{where}: pooling combines {mode}; one pooling mode is supported")
        mode = mode[0]
    if mode not in POOLING_MODES:
        raise ModelError(
            f"{where}: pooling mode {mode!r} is not supported (supported: {POOLING_MODES})"
        )
    return str(mode)


def read_embedding_format(root: str | os.PathLike) -> EmbeddingFormat:
    """Read a sentence-transformers directory's declared format.

    ``modules.json`` gives the modules (Transformer, Pooling, Normalize), ``<pooling>/config.json``
    the pooling mode and ``include_prompt`` (sentence-transformers' default: True), and
    ``config_sentence_transformers.json`` the fixed ``prompts`` and ``default_prompt_name``.
    """
    root = Path(root)
    modules_file = root / "modules.json"
    st_config_file = root / "config_sentence_transformers.json"
    st_config = _json(st_config_file) if st_config_file.is_file() else {}
    prompts = {k: v for k, v in (st_config.get("prompts") or {}).items() if v is not None}
    if not modules_file.is_file():
        return EmbeddingFormat(prompts=prompts)
    modules = _json(modules_file)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    transformers_ = [m for m, k in zip(modules, kinds, strict=True) if k == "Transformer"]
    pooling = [m for m, k in zip(modules, kinds, strict=True) if k == "Pooling"]
    if not transformers_:
        raise ModelError(f"{root}: modules.json declares no Transformer module ({kinds})")
    if not pooling:
        raise ModelError(f"{root}: modules.json declares no Pooling module ({kinds})")
    pooling_file = root / pooling[0].get("path", "") / "config.json"
    pooling_config = _json(pooling_file) if pooling_file.is_file() else {}
    return EmbeddingFormat(
        pooling=_pooling_mode(pooling_config, pooling_file),
        include_prompt=bool(pooling_config.get("include_prompt", True)),
        normalize="Normalize" in kinds,
        prompts=prompts,
        default_prompt_name=st_config.get("default_prompt_name"),
        transformer_path=str(transformers_[0].get("path", "") or ""),
        declared=True,
    )


def local_model_dir(source: str | os.PathLike, revision: str | None = None) -> Path:
    """The directory holding ``source``'s files: itself if local, else its cached hub snapshot.

    Never downloads: a hub model must have been prefetched (``snakemake prefetch``).
    """
    if is_local(source):
        path = Path(str(source)).expanduser()
        if not path.is_dir():
            raise ModelError(f"model path {str(source)!r} is not a directory")
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(source), revision=revision, local_files_only=True))
    except Exception as exc:
        raise ModelError(
            f"{source!r} (revision {revision!r}) is not in the local Hugging Face cache: {exc}. "
            "Prefetch it first (`snakemake prefetch` on a node with internet)."
        ) from exc


def resolve_embedding_model(
    source: str | os.PathLike, revision: str | None = None
) -> tuple[str, str | None, EmbeddingFormat]:
    """``(load_source, load_revision, format)`` of an embedding model (trained or published).

    The format is read from the model's files (:func:`read_embedding_format`). When its
    Transformer module lives in a sub-directory (``0_Transformer``, older sentence-transformers)
    the load source is that directory of the local copy; otherwise ``source`` and ``revision``
    are returned unchanged, so hub ids keep resolving through the cache with their revision.
    A ``config.json`` that names custom code (``auto_map``) is logged: the model is loaded with
    transformers' own class for its ``model_type`` (never remote code), bidirectional attention
    set and checked as for every model.
    """
    root = local_model_dir(source, revision)
    fmt = read_embedding_format(root)
    load_dir = root / fmt.transformer_path if fmt.transformer_path else root
    config_file = load_dir / "config.json"
    if config_file.is_file() and _json(config_file).get("auto_map"):
        log.info(
            "%s declares custom code (auto_map); loading it with transformers' own class for "
            "its model_type, attention set and checked by hrsa.models.load_backbone",
            source,
        )
    if fmt.transformer_path:
        return str(load_dir), None, fmt
    return str(source), revision, fmt
