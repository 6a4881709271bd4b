# Two commands do everything on a fresh machine:
#   make run    - create/refresh .venv, install torch then hrsa, run the default workflow
#   make test   - create/refresh .venv, install torch then hrsa[dev], run the test suite
# Override TORCH_SPEC on a GPU machine (e.g. TORCH_SPEC="torch>=2.4") to keep its CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.hrsa-installed

.PHONY: run test lint dryrun-paper report clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first: otherwise a dependency pulls a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
	$(BIN)/snakemake --workflow-profile profiles/local --cores $(CORES)

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
	$(BIN)/python -m pytest -q -n $(CORES) --durations=15

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

dryrun-paper: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/snakemake -n --workflow-profile profiles/slurm-l20 --configfile config/paper.yaml

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

clean:
	rm -rf results logs .snakemake
