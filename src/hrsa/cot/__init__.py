"""Generate and judge chain-of-thought traces (paper Appendix C) against OpenAI-compatible servers.

The workflow's rules ``cot_problems`` -> ``cot_generate`` -> ``cot_judge`` (rules/cot.smk) call,
per problem source of ``config["cot_generation"]["sources"]``:

* :mod:`hrsa.cot.sources` - the problems of one source (a Hub dataset or a local file: field
  names, filters, a seeded sample, a cap), with the authors' question ids (``{split}_{index}``);
* :mod:`hrsa.cot.prompts` - Prompts 1-4 from a YAML file (``config/cot_prompts.yaml``), rendered
  into chat messages and hashed;
* :mod:`hrsa.cot.client` - the requests: the official ``openai`` client, bounded concurrency,
  retries with exponential backoff on 429/5xx/timeouts/connection errors, failures recorded;
* :mod:`hrsa.cot.cache` - every finished request appended atomically to a JSONL cache keyed by
  (problem id, model, request settings, prompt hash), so a killed job resumes where it stopped and
  a rerun sends nothing;
* :mod:`hrsa.cot.serve` - where the model runs: an external endpoint, ``vllm serve`` started by
  the job on its (SLURM GPU) node, or ``transformers serve`` started locally; health-checked
  before use, stopped afterwards;
* :mod:`hrsa.cot.pipeline` - generation, judging, the dry-run estimate and the per-source
  statistics (Table 11, the dataset card).

The judged files have the schema of the authors' published traces (``problem``, ``reasoning``,
``answer``, ``correctness_label``, ... plus source, tier, models, settings and token counts), so
``probe_datasets.<key>: {registry: cot, traces: generated}`` reads them with the loader of the
published traces (:mod:`hrsa.data.probe`). ``python -m hrsa.cot`` runs the same steps without
Snakemake.
"""
