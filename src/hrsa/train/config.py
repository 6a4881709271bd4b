"""The training recipe's settings: one validated dataclass built from ``config["training"]``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import TRAINING_OTHER_KEYS, load_schema, schema_default
from ..errors import config_error
from ..models import ATTENTION_MODES

log = logging.getLogger("hrsa.train")


def _default(key: str):
    """The schema's default of ``training.<key>`` (the schema owns every default)."""
    return schema_default(f"training.{key}")


@dataclass(frozen=True)
class TrainConfig:
    """Table 5's recipe. Every default is the config schema's (``training.<key>``), i.e. the tiny
    offline recipe; the paper's values are in ``config/paper.yaml`` (and in comments here)."""

    temperature: float = _default("temperature")
    global_batch_size: int = _default("global_batch_size")  # paper: 2048
    mini_batch_size: int = _default("mini_batch_size")  # per process, for gradient caching
    gradient_cache: bool = _default("gradient_cache")
    num_negatives: int = _default("mining.num_negatives")  # derived: mining.num_negatives
    learning_rate: float = _default("learning_rate")  # paper: 2e-5 (the tiny models need more)
    warmup_ratio: float = _default("warmup_ratio")
    weight_decay: float = _default("weight_decay")
    # the Hugging Face Trainer default the authors inherited
    max_grad_norm: float | None = _default("max_grad_norm")
    max_steps: int = _default("max_steps")  # paper: 782 (one epoch of 1,603,172 examples)
    save_every: int = _default("save_every")  # paper: 200
    max_length: int = _default("max_length")  # paper: 512 (queries with instruction, passages)
    instruction_template: str = _default("instruction_template")
    exclude_instruction_from_pool: bool = _default("exclude_instruction_from_pool")
    gradient_checkpointing: bool = _default("gradient_checkpointing")  # paper: true
    attention: str = _default("attention")
    fsdp: bool = _default("fsdp")  # paper: true
    # empty: the model's own decoder-layer classes
    fsdp_layer_classes: tuple[str, ...] = field(
        default_factory=lambda: tuple(_default("fsdp_layer_classes"))
    )
    mixed_precision: str = _default("mixed_precision")  # auto = bf16 autocast on GPU, none on CPU
    save_dtype: str = _default("save_dtype")  # auto = bfloat16 when trained on GPU, float32 on CPU
    # not a config key: the target's training seed (one of training.seeds), set per model
    seed: int = _default("seeds")[0]
    # not a config key: LoRA adapters ({rank, alpha, dropout, target_modules}, from
    # training.lora) for a LoRA target results/embeddings/{model}/lora-seed{seed}; None = full
    adapter: dict | None = None

    def __post_init__(self):
        def bad(key, why):
            raise config_error(f"training.{key}", f"{why} (got {getattr(self, key)!r})")

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
        if self.adapter is not None:
            from .lora import check_adapter

            object.__setattr__(self, "adapter", check_adapter(self.adapter))

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
                    raise config_error(f"training.{key}", f"not a number: {kwargs[key]!r}") from exc
        return cls(**kwargs)

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        record["fsdp_layer_classes"] = list(self.fsdp_layer_classes)
        record["adapter"] = dict(self.adapter) if self.adapter is not None else None
        return record

    @property
    def warmup_steps(self) -> int:
        """ceil(warmup_ratio * max_steps), as the Hugging Face Trainer counts them."""
        import math

        return math.ceil(self.warmup_ratio * self.max_steps)


#: Keys of ``config["training"]`` that belong to other stages (data, mining, launching, targets,
#: the report): :data:`hrsa.config.TRAINING_OTHER_KEYS` (torch-free, so the plan uses it too),
#: which is exactly the schema's training keys that are not :class:`TrainConfig` fields
#: (:func:`schema_other_keys`; tests/test_config_defaults.py keeps the two equal).
#: ``TrainConfig.seed`` is no config key (each target's seed comes from ``training.seeds``).
NON_TRAINER_KEYS = frozenset(TRAINING_OTHER_KEYS)


def schema_other_keys() -> frozenset[str]:
    """The schema's ``training`` keys that are not :class:`TrainConfig` fields."""
    training = load_schema()["properties"]["training"]["properties"]
    return frozenset(set(training) - {f.name for f in dataclasses.fields(TrainConfig)})


def snapshot_steps(max_steps: int, save_every: int) -> list[int]:
    """Steps with a snapshot under ``checkpoints/step{N}/``: every ``save_every`` and the last."""
    steps = list(range(save_every, max_steps + 1, save_every))
    if not steps or steps[-1] != max_steps:
        steps.append(max_steps)
    return steps
