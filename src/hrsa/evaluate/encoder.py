"""The mteb encoder for our embedding checkpoints and backbones (imports mteb: load it lazily).

Why not mteb's ``InstructSentenceTransformerModel``: it excludes the instruction from the mean
through sentence-transformers' ``include_prompt=False``, which counts the instruction's tokens by
tokenizing it alone - one token too many whenever byte-level BPE merges the template's trailing
space into the first word (``"Query: "`` + ``"related"`` -> ``":" "Ġre" ...``), so that word is
dropped from the mean - and it builds the model from a sentence-transformers directory, which a
backbone LLM (the optional reference row) is not: that route gives it last-token pooling and
causal attention. This small :class:`AbsEncoder` subclass instead embeds with
:func:`hrsa.train.embedding.embed_texts`, the function training uses (instruction tokens found
per text from character offsets), on a model loaded bidirectional and checked by
:func:`hrsa.models.load_backbone`; mteb's interface and evaluation are unchanged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from ..errors import ModelError
from ..models import load_backbone
from ..train.embedding import embed_texts
from .instructions import DEFAULT_TEMPLATE, Instructions

log = logging.getLogger("hrsa.evaluate.encoder")


def check_declared_pooling(path: str | os.PathLike) -> None:
    """A sentence-transformers checkpoint must declare what we compute: mean pooling + Normalize.

    Directories without ``modules.json`` (a backbone LLM) are not checked.
    """
    root = Path(path)
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return
    modules = json.loads(modules_file.read_text())
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    pooling = [m for m in modules if m.get("type", "").endswith("Pooling")]
    if not pooling:
        raise ModelError(f"{root}: modules.json declares no Pooling module ({kinds})")
    config_file = root / pooling[0].get("path", "") / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    mode = config.get("pooling_mode")
    if mode is None:  # older sentence-transformers: one boolean per mode
        mode = "mean" if config.get("pooling_mode_mean_tokens") else None
    if mode not in ("mean", ["mean"]):
        raise ModelError(f"{root}: pooling is {mode!r}; the evaluation computes mean pooling")
    if "Normalize" not in kinds:
        raise ModelError(f"{root}: modules.json has no Normalize module; embeddings are normalised")


class InstructionMeanPoolEncoder(AbsEncoder):
    """Mean-pooled, normalised, bidirectional embeddings with instructions on queries only.

    ``instructions=None`` encodes every text as is (the plain sentence-transformers behaviour).
    Otherwise a text gets ``instructions.instruction(task, type, subset)`` in the template unless
    mteb encodes it as a retrieval document (``prompt_type == document``); the texts of symmetric
    tasks (STS, classification, clustering: ``prompt_type`` None) are all queries.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        name: str,
        revision: str | None = None,
        instructions: Instructions | None = None,
        batch_size: int = 16,
        max_length: int = 512,
        dtype: str = "auto",
        device: str = "auto",
    ) -> None:
        check_declared_pooling(source)
        self.model, self.tokenizer = load_backbone(
            source, revision=revision, dtype=dtype, attention="bidirectional", device=device
        )
        self.instructions = instructions
        self.template = instructions.template if instructions is not None else DEFAULT_TEMPLATE
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self._announced: set[tuple[str, str, str | None]] = set()
        self.mteb_model_meta = ModelMeta(
            loader=None,
            name=name,
            revision=revision or "local",
            release_date=None,
            languages=None,
            n_parameters=sum(p.numel() for p in self.model.parameters()),
            memory_usage_mb=None,
            max_tokens=self.max_length,
            embed_dim=self.model.config.hidden_size,
            license=None,
            open_weights=True,
            public_training_code=None,
            public_training_data=None,
            framework=["PyTorch", "Sentence Transformers"],
            similarity_fn_name=ScoringFunction.COSINE,
            use_instructions=instructions is not None,
            training_datasets=None,
        )

    def query_instruction(
        self, task_metadata, hf_subset: str, prompt_type: PromptType | None
    ) -> str:
        """The raw instruction of one encode call ("" for documents or without instructions)."""
        if self.instructions is None or prompt_type == PromptType.document:
            return ""
        return self.instructions.instruction(task_metadata.name, task_metadata.type, hf_subset)

    def encode(
        self,
        inputs,
        *,
        task_metadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        instruction = self.query_instruction(task_metadata, hf_subset, prompt_type)
        key = (task_metadata.name, hf_subset, prompt_type.value if prompt_type else None)
        if key not in self._announced:
            self._announced.add(key)
            log.info("%s/%s %s: instruction %r", *key, instruction)
        embeddings = embed_texts(
            self.model,
            self.tokenizer,
            texts,
            instruction=instruction or None,
            template=self.template,
            exclude_instruction=True,
            batch_size=self.batch_size,
            max_length=self.max_length,
        )
        return embeddings.numpy()
