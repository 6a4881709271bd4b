# Validation and the plan. Every decision about what runs lives in hrsa.plan.Plan (a tested
# module): the rule files only declare rules and call PLAN. No rules here.
import os
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from hrsa.config import validate_config  # noqa: E402
from hrsa.plan import Plan  # noqa: E402
from hrsa import plan as paths  # noqa: E402

# validation fills the schema's defaults into `config`: the schema owns every default
validate_config(config)
PLAN = Plan(config, basedir=workflow.basedir)
THREADS = PLAN.threads


wildcard_constraints:
    **PLAN.wildcard_constraints(),
