"""LoRA embedding models (paper Table 6): the same contrastive recipe with low-rank adapters.

The backbone is wrapped by ``peft`` (:func:`add_adapter`) and trained exactly as the full model is
(same loss, batches, schedule; only the adapters' parameters require gradients). What is saved
is a plain merged model, W + (alpha / r) B A for every adapted weight, so a LoRA embedding model
loads, evaluates and is analysed like a full one (``transformers.AutoModel``, sentence-
transformers), with no ``peft`` at inference.

The defaults of ``training.lora`` are the authors' LoRA: ``LoraConfig(r=16, lora_alpha=32,
lora_dropout=0.1, target_modules="all-linear", task_type=FEATURE_EXTRACTION)`` in their
training code (gritlm ``training/run.py``).

Why the merge is computed here on a state dict and not with ``peft``'s ``merge_and_unload``:
that call rewrites the live modules in place (training could not continue after a snapshot) and
needs the whole model on one process, while snapshots are taken from the state dict that
``accelerate`` gathers (from FSDP shards when sharded) onto the main process. The merge below
reads each adapter's own scaling and layout from the ``peft`` layers, and
``tests/test_train_lora.py`` checks it against ``merge_and_unload``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..config import LORA_ADAPTER_KEYS
from ..errors import config_error

if TYPE_CHECKING:  # torch stays unimported for the config check (validate_config calls it)
    import torch
    from torch import nn

#: The keys of an adapter setting (``training.lora`` without ``models`` and ``learning_rate``).
ADAPTER_KEYS = LORA_ADAPTER_KEYS
PEFT_PREFIX = "base_model.model."


def check_adapter(adapter: Mapping) -> dict:
    """The adapter settings, validated (errors name ``training.lora.<key>``)."""
    unknown = sorted(set(adapter) - set(ADAPTER_KEYS))
    if unknown:
        raise config_error(f"training.lora.{unknown[0]}", "unknown adapter setting")
    out = {k: adapter[k] for k in ADAPTER_KEYS if k in adapter}
    missing = [k for k in ADAPTER_KEYS if k not in out]
    if missing:
        raise config_error(f"training.lora.{missing[0]}", "missing")
    rank = out["rank"]
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise config_error("training.lora.rank", f"must be a positive integer (got {rank!r})")
    if not isinstance(out["alpha"], int | float) or not out["alpha"] > 0:
        raise config_error("training.lora.alpha", f"must be > 0 (got {out['alpha']!r})")
    if not isinstance(out["dropout"], int | float) or not 0 <= out["dropout"] < 1:
        raise config_error("training.lora.dropout", f"must be in [0, 1) (got {out['dropout']!r})")
    targets = out["target_modules"]
    if isinstance(targets, str):
        if targets != "all-linear":
            raise config_error(
                "training.lora.target_modules",
                f"must be all-linear or a list of module names (got {targets!r})",
            )
    elif not targets or not all(isinstance(t, str) for t in targets):
        raise config_error(
            "training.lora.target_modules", f"must be a non-empty list of names (got {targets!r})"
        )
    else:
        out["target_modules"] = list(targets)
    return out


def add_adapter(backbone: nn.Module, adapter: Mapping) -> nn.Module:
    """``backbone`` wrapped with LoRA adapters (a ``peft`` model whose forward is the backbone's)."""
    from peft import LoraConfig, TaskType, get_peft_model

    adapter = check_adapter(adapter)
    config = LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        r=adapter["rank"],
        lora_alpha=adapter["alpha"],
        lora_dropout=adapter["dropout"],
        target_modules=adapter["target_modules"],
        bias="none",
    )
    return get_peft_model(backbone, config)


def is_adapted(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def base_model(model: nn.Module) -> nn.Module:
    """The transformers model under a ``peft`` wrapper (the model itself when not wrapped)."""
    return model.get_base_model() if is_adapted(model) else model


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable and total parameters (for the training summary)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_parameters": trainable, "total_parameters": total}


def merged_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict:
    """The plain backbone's state dict from the full state dict of a ``peft`` model.

    ``state`` has ``peft``'s keys (``base_model.model.<name>.base_layer.weight``,
    ``...lora_A.<adapter>.weight``, ``...lora_B.<adapter>.weight``); the result has the
    backbone's keys, with every adapted weight replaced by W + scaling * B A (in fp32, cast back
    to W's dtype) and the adapters dropped. ``model`` supplies each layer's scaling and layout.
    """
    import torch
    from peft.tuners.lora import LoraLayer

    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            for adapter, scale in module.scaling.items():
                layers[name] = (
                    adapter,
                    float(scale),
                    bool(getattr(module, "fan_in_fan_out", False)),
                )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        plain = key.removeprefix(PEFT_PREFIX).replace(".base_layer.", ".")
        layer = key.rsplit(".base_layer.", 1)[0] if ".base_layer." in key else None
        if layer is not None and key.endswith(".base_layer.weight") and layer in layers:
            adapter, scale, transposed = layers[layer]
            a = state[f"{layer}.lora_A.{adapter}.weight"].to(torch.float32)
            b = state[f"{layer}.lora_B.{adapter}.weight"].to(torch.float32)
            delta = b @ a
            if transposed:
                delta = delta.T
            value = (value.to(torch.float32) + scale * delta.to(value.device)).to(value.dtype)
        out[plain] = value
    return out
