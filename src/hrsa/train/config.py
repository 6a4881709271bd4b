"""The training recipe's settings: one validated dataclass built from ``config["training"]``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..data.contrastive import DEFAULT_TEMPLATE
from ..errors import ConfigError
from ..models import ATTENTION_MODES

log = logging.getLogger("hrsa.train")

# Keys of config["training"] that belong to other stages (data, mining, launching, targets).
NON_TRAINER_KEYS = frozenset({"enabled", "seeds", "analysis_seed", "data", "mining", "gpus"})


@dataclass(frozen=True)
class TrainConfig:
    """Table 5's recipe; the defaults are the tiny offline config (paper values in comments)."""

    temperature: float = 0.02
    global_batch_size: int = 32  # paper: 2048
    mini_batch_size: int = 8  # per process, for gradient caching
    gradient_cache: bool = True
    num_negatives: int = 3
    learning_rate: float = 1e-3  # paper: 2e-5 (the tiny models need a larger step)
    warmup_ratio: float = 0.03
    weight_decay: float = 0.05
    max_grad_norm: float | None = 1.0  # the Hugging Face Trainer default the authors inherited
    max_steps: int = 30  # paper: 782 (one epoch of 1,603,172 examples)
    save_every: int = 10  # paper: 200
    max_length: int = 64  # paper: 512 (queries with their instruction, and passages)
    instruction_template: str = DEFAULT_TEMPLATE
    exclude_instruction_from_pool: bool = True
    gradient_checkpointing: bool = False  # paper: true
    attention: str = "bidirectional"
    fsdp: bool = False
    fsdp_layer_classes: tuple[str, ...] = field(default_factory=tuple)  # default: the model's own
    mixed_precision: str = "auto"  # auto = bf16 autocast on GPU, none on CPU
    save_dtype: str = "auto"  # auto = bfloat16 when trained on GPU, float32 on CPU
    seed: int = 0

    def __post_init__(self):
        def bad(key, why):
            raise ConfigError(f"training.{key}: {why} (got {getattr(self, key)!r})")

        for key in (
            "global_batch_size",
            "mini_batch_size",
            "max_steps",
            "save_every",
            "max_length",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(key, "must be a positive integer")
        if not isinstance(self.num_negatives, int) or self.num_negatives < 0:
            bad("num_negatives", "must be a non-negative integer")
        if not self.temperature > 0:
            bad("temperature", "must be > 0")
        if not self.learning_rate > 0:
            bad("learning_rate", "must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            bad("warmup_ratio", "must be in [0, 1)")
        if self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            bad("max_grad_norm", "must be > 0 or null")
        if self.attention not in ATTENTION_MODES:
            bad("attention", f"must be one of {ATTENTION_MODES}")
        if "{instruction}" not in self.instruction_template:
            bad("instruction_template", "must contain the placeholder {instruction}")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            bad("mixed_precision", "must be auto, bf16 or no")
        if self.save_dtype not in ("auto", "float32", "bfloat16"):
            bad("save_dtype", "must be auto, float32 or bfloat16")

    @classmethod
    def from_mapping(cls, settings: Mapping | None = None, **overrides) -> TrainConfig:
        """Build from ``config["training"]`` (other stages' keys are ignored, unknown keys warned)."""
        settings = {**dict(settings or {}), **overrides}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known - NON_TRAINER_KEYS)
        if unknown:
            log.warning("ignoring unknown training settings: %s", ", ".join(unknown))
        kwargs = {k: v for k, v in settings.items() if k in known}
        if "fsdp_layer_classes" in kwargs:
            kwargs["fsdp_layer_classes"] = tuple(kwargs["fsdp_layer_classes"] or ())
        for key in ("temperature", "learning_rate", "warmup_ratio", "weight_decay"):
            if key in kwargs and isinstance(kwargs[key], str):  # YAML reads 2e-5 as a string
                try:
                    kwargs[key] = float(kwargs[key])
                except ValueError as exc:
                    raise ConfigError(f"training.{key}: not a number: {kwargs[key]!r}") from exc
        return cls(**kwargs)

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        record["fsdp_layer_classes"] = list(self.fsdp_layer_classes)
        return record

    @property
    def warmup_steps(self) -> int:
        """ceil(warmup_ratio * max_steps), as the Hugging Face Trainer counts them."""
        import math

        return math.ceil(self.warmup_ratio * self.max_steps)


def snapshot_steps(max_steps: int, save_every: int) -> list[int]:
    """Steps with a snapshot under ``checkpoints/step{N}/``: every ``save_every`` and the last."""
    steps = list(range(save_every, max_steps + 1, save_every))
    if not steps or steps[-1] != max_steps:
        steps.append(max_steps)
    return steps
