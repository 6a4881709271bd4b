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

A model that is not ours (the authors' published checkpoints, config key
``models.<key>.embedding_source``) is evaluated as its sentence-transformers files declare it:
:func:`detect_format` reads the pooling mode, ``include_prompt`` and the fixed prompts and logs
each departure from the recipe before it is used.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from ..config import schema_default
from ..models import load_backbone, resolve_embedding_model
from ..train.embedding import embed_texts
from .instructions import DEFAULT_TEMPLATE, InstructionLookup, Resolved

log = logging.getLogger("hrsa.evaluate.encoder")


def matches_template(prompt: str, template: str) -> bool:
    """Whether a fixed prompt is ``template`` with some instruction filled in."""
    head, _, tail = template.partition("{instruction}")
    pattern = re.escape(head) + "(.*)" + re.escape(tail)
    return re.fullmatch(pattern, prompt, flags=re.DOTALL) is not None


def detect_format(source: str | os.PathLike, revision: str | None = None):
    """``(load_source, load_revision, format)`` of a model to evaluate, with what was detected
    logged: the pooling, prompt handling and prompts its sentence-transformers files declare
    (:func:`hrsa.models.read_embedding_format`); a directory without ``modules.json`` (a
    backbone LLM) gets the recipe."""
    load_source, load_revision, fmt = resolve_embedding_model(source, revision)
    if not fmt.declared:
        log.info("%s: no sentence-transformers files; the recipe's format is used", source)
        return load_source, load_revision, fmt
    log.info("%s declares %s", source, fmt.describe())
    differences = fmt.differences()
    if differences:
        log.warning(
            "%s differs from the training recipe (%s); its own format is used",
            source,
            "; ".join(differences),
        )
    return load_source, load_revision, fmt


class InstructionMeanPoolEncoder(AbsEncoder):
    """Mean-pooled, normalised, bidirectional embeddings with instructions on queries only.

    ``instructions=None`` encodes every text as is (the plain sentence-transformers behaviour).
    Otherwise a text gets ``instructions.instruction(task, type, subset)`` in the template unless
    mteb encodes it as a retrieval document (``prompt_type == document``); the texts of symmetric
    tasks (STS, classification, clustering: ``prompt_type`` None) are all queries.

    A model whose sentence-transformers files declare another format (a published checkpoint;
    :func:`detect_format`) is evaluated with its own: its pooling mode, its prompt handling
    (``include_prompt``: the prefix's tokens pooled or not), Normalize or not, and its fixed
    prompts: a query prompt in the recipe's template keeps the per-task instructions, any other
    query prompt replaces them for every query, and a document prompt is put before documents.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        name: str,
        revision: str | None = None,
        instructions: InstructionLookup | None = None,
        batch_size: int = schema_default("evaluation.batch_size"),
        max_length: int = schema_default("evaluation.max_length"),
        dtype: str = schema_default("evaluation.dtype"),
        device: str = schema_default("device"),
    ) -> None:
        self.source = str(source)
        load_source, load_revision, self.format = detect_format(source, revision)
        self.model, self.tokenizer = load_backbone(
            load_source,
            revision=load_revision,
            dtype=dtype,
            attention="bidirectional",
            device=device,
        )
        self.instructions = instructions
        self.template = instructions.template if instructions is not None else DEFAULT_TEMPLATE
        self.own_query_prompt = ""
        query_prompt = self.format.query_prompt
        if query_prompt and instructions is not None:
            if matches_template(query_prompt, self.template):
                log.info(
                    "query prompt %r is in the recipe's template: per-task instructions",
                    query_prompt,
                )
            else:
                self.own_query_prompt = query_prompt
                log.warning(
                    "queries get the model's own prompt %r, not per-task instructions", query_prompt
                )
        self.document_prompt = self.format.document_prompt if instructions is not None else ""
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

    def prefix(
        self, task_metadata, hf_subset: str, prompt_type: PromptType | None
    ) -> tuple[str, str]:
        """``(instruction, template)`` of one encode call: the recipe's instruction in its
        template, or a model's own fixed prompt (template ``{instruction}``, i.e. verbatim)."""
        if prompt_type == PromptType.document:
            if self.document_prompt:
                return self.document_prompt, "{instruction}"
            return "", self.template
        if self.own_query_prompt:
            return self.own_query_prompt, "{instruction}"
        return self.query_instruction(task_metadata, hf_subset, prompt_type), self.template

    def instruction_rows(self, tasks, benchmark: str) -> list[dict]:
        """What the queries and the documents of every (task, subset) of ``tasks`` get - from
        :meth:`prefix`, the method :meth:`encode` calls - and where the query instruction came
        from: rows of :data:`hrsa.evaluate.instructions.INSTRUCTION_COLUMNS`."""
        rows = []
        for task in tasks:
            meta = task.metadata
            for subset in task.hf_subsets:
                instruction, template = self.prefix(meta, subset, PromptType.query)
                document, _ = self.prefix(meta, subset, PromptType.document)
                if self.own_query_prompt:
                    found = Resolved(instruction, "model_prompt", self.source)
                elif self.instructions is None:
                    found = Resolved("", "none")
                else:
                    found = self.instructions.resolve(meta.name, meta.type, subset)
                rows.append(
                    {
                        "benchmark": benchmark,
                        "task": meta.name,
                        "subset": subset,
                        "task_type": meta.type,
                        "instruction": instruction,
                        "source": found.source if instruction else "none",
                        "origin": found.origin or "",
                        "sha256": found.sha256 or "",
                        "template": template if instruction else "",
                        "document_instruction": document,
                        "note": found.note,
                    }
                )
        return rows

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
        instruction, template = self.prefix(task_metadata, hf_subset, prompt_type)
        key = (task_metadata.name, hf_subset, prompt_type.value if prompt_type else None)
        if key not in self._announced:
            self._announced.add(key)
            log.info("%s/%s %s: instruction %r", *key, instruction)
        embeddings = embed_texts(
            self.model,
            self.tokenizer,
            texts,
            instruction=instruction or None,
            template=template,
            exclude_instruction=not self.format.include_prompt,
            batch_size=self.batch_size,
            max_length=self.max_length,
            normalize=self.format.normalize,
            pooling=self.format.pooling,
        )
        return embeddings.numpy()
