"""MTEB evaluation of the embedding models and the paper's Table 1 (docs/contracts.md, contract 4).

Modules, one concern each:

* :mod:`.names` - benchmark slugs and model names used in paths (no heavy imports);
* :mod:`.instructions` - the prompts file: per-task instructions and the query template, and
  where each instruction came from;
* :mod:`.authors` - the authors' published instruction files (task_prompts.json,
  evaluate_bright.py) over the prompts file;
* :mod:`.encoder` - the mteb encoder for our checkpoints and backbones (pooling: the training
  stage's :func:`hrsa.train.embedding.embed_texts`, so both pool alike);
* :mod:`.local_tasks` - small offline mteb tasks built from the synthetic generators ("HRSA-Local");
* :mod:`.run` - one evaluation run (model x benchmark) through ``mteb.evaluate`` + the tidy CSV;
* :mod:`.aggregate` - benchmark means, Table 1 (pandas only).

``import mteb`` costs seconds, so only :mod:`.encoder`, :mod:`.local_tasks` and :mod:`.run` touch
it, and this package's ``__init__`` imports none of them: importing ``hrsa.evaluate`` (e.g. from a
Snakefile, for :func:`benchmark_slug`) stays cheap.
"""

from .names import LOCAL_BENCHMARK, benchmark_slug

__all__ = ["LOCAL_BENCHMARK", "benchmark_slug"]
