# hrsa-workflow: HRSA of base vs reasoning LLMs and of their embedding models.
# Layout and data contracts: DESIGN.md (shared) and README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/data.smk"
include: "rules/activations.smk"


rule all:
    input:
        all_targets(),
    default_target: True
