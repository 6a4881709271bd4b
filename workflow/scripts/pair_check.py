"""Check that the two stores of a pair hold identical token ids row by row."""

from hrsa.logs import job_setup

job_setup(snakemake, threads=False)

from hrsa.activations import ActivationStore, check_aligned, write_pair_check  # noqa: E402

base = ActivationStore(snakemake.input.base)
reasoning = ActivationStore(snakemake.input.reasoning)
check_aligned(base, reasoning)
write_pair_check(base, reasoning, snakemake.output[0])
