"""Contrastive training of LLM backbones into embedding models (paper section 2, Appendix A).

Public API:

* :func:`train_embedding_model` - the Table 5 recipe, resumable, one process or many;
* :class:`TrainConfig` - the recipe's settings (``config["training"]``), :func:`snapshot_steps`;
* :func:`embed_texts`, :func:`load_embedding_model`, :func:`tokenize`, :class:`MeanPoolEmbedder`,
  :func:`save_embedding_model` - mean-pooled embeddings and the checkpoint format;
* :func:`launch` - run training in this process or under ``accelerate launch`` (several GPUs).
"""

from .config import TrainConfig, snapshot_steps
from .embedding import (
    MeanPoolEmbedder,
    embed_texts,
    load_embedding_model,
    mean_pool,
    save_embedding_model,
    tokenize,
)
from .launch import launch, launch_command
from .trainer import TrainingInterrupted, build_loss, train_embedding_model, work_dir_for

__all__ = [
    "MeanPoolEmbedder",
    "TrainConfig",
    "TrainingInterrupted",
    "build_loss",
    "embed_texts",
    "launch",
    "launch_command",
    "load_embedding_model",
    "mean_pool",
    "save_embedding_model",
    "snapshot_steps",
    "tokenize",
    "train_embedding_model",
    "work_dir_for",
]
