# hrsa-workflow: HRSA of base vs reasoning LLMs and of their embedding models.
# Layout and data contracts: docs/contracts.md and README.md.
from snakemake.utils import min_version

min_version("9.0")


# The default config applies only when no --configfile is given: a --configfile replaces it
# instead of being deep-merged into it (so the paper's pairs never mix with the tiny ones).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/data.smk"
include: "rules/cot.smk"
include: "rules/activations.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/hrsa.smk"
include: "rules/report.smk"
include: "rules/prefetch.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        PLAN.all_targets(),
