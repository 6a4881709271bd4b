"""``python -m hrsa.cot``: the CoT generation's steps without Snakemake, on the workflow's files.

    python -m hrsa.cot estimate --configfile config/paper.yaml config/cot-generation.yaml
    python -m hrsa.cot problems --configfile ... [--source gsm8k ...]
    python -m hrsa.cot generate --configfile ... --source gsm8k [--dry-run]
    python -m hrsa.cot judge    --configfile ... --source gsm8k [--dry-run]

Config files are merged in order (as Snakemake's ``--configfile a b`` does), validated and
planned like the workflow (:class:`hrsa.plan.Plan`); the steps read and write the same paths as
the rules (``results/cot/...``, run from the workflow's directory) and share their request
caches. ``--dry-run`` prints the requests, tokens and cost a step would send, and sends none.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_plan(configfiles):
    from ..config import validate_config
    from ..plan import Plan

    config: dict = {}
    for path in configfiles:
        _merge(config, yaml.safe_load(Path(path).read_text()) or {})
    validate_config(config)
    return Plan(config, basedir=Path(__file__).resolve().parents[3])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrsa.cot", description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["estimate", "problems", "generate", "judge"])
    parser.add_argument("--configfile", nargs="+", required=True)
    parser.add_argument("--source", action="append", help="a cot_generation.sources key")
    parser.add_argument("--dry-run", action="store_true", help="print the estimate, send nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from .. import plan as paths
    from . import pipeline
    from .sources import write_problems

    plan = load_plan(args.configfile)
    sources = args.source or plan.cot_sources()
    unknown = [s for s in sources if s not in plan.cot_sources()]
    if unknown or not sources:
        parser.error(f"unknown or no sources {unknown}; configured: {plan.cot_sources()}")
    requests = plan.cot_requests()
    prompts = plan.cot_prompts_file()
    if args.step == "problems":
        for s in sources:
            write_problems(
                s,
                plan.cot_source_spec(s),
                paths.COT_PROBLEMS.format(cot_source=s),
                mirror=plan.data_mirror,
            )
        return 0
    if args.step == "estimate" or args.dry_run:
        settings = plan.cot_estimate_settings()
        settings["problems"] = {s: settings["problems"][s] for s in sources}
        report = pipeline.dry_run_of(settings, requests=requests, prompts_path=prompts)
        print(pipeline.format_dry_run(report))
        return 0
    for s in sources:
        if args.step == "generate":
            pipeline.generate(
                paths.COT_PROBLEMS.format(cot_source=s),
                paths.COT_GENERATED.format(cot_source=s),
                endpoint=plan.cot_endpoint("generator", s),
                requests=requests,
                prompts_path=prompts,
                cache_path=plan.cot_cache_file(s, "generate"),
                server_log=f"logs/cot/generate/{s}.log.server.log",
            )
        else:
            pipeline.judge(
                paths.COT_GENERATED.format(cot_source=s),
                paths.COT_JUDGED.format(cot_source=s),
                paths.COT_STATS.format(cot_source=s),
                endpoint=plan.cot_endpoint("judge"),
                requests=requests,
                prompts_path=prompts,
                cache_path=plan.cot_cache_file(s, "judge"),
                source_spec=plan.cot_source_info(s),
                server_log=f"logs/cot/judge/{s}.log.server.log",
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
