"""The report's plan (hrsa.plan.Plan) follows the config; a full run of rules/report.smk writes
every planned file.

Which outputs the report has and which files each reads are decided by :class:`Plan`, tested
here directly on a validated config built over the example results tree
(hrsa.report.examples). One slow test runs the real rules (rules/common.smk + rules/report.smk,
included from a minimal Snakefile) with Snakemake over that tree.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hrsa.config import validate_config
from hrsa.plan import Plan
from hrsa.report import examples

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PAIRS = ("sft", "prorl")
DATASETS = ("cot", "mmlu")
# A Snakefile with nothing of its own: the workflow's validation and plan, and the report rules.
SNAKEFILE = f"""\
configfile: "config.json"


report: {str(REPO / "workflow" / "report" / "workflow.rst")!r}


include: {str(REPO / "rules" / "common.smk")!r}
include: {str(REPO / "rules" / "report.smk")!r}
"""

ALL_TABLES = (1, 2, 3, 4, 7, 12, 13)
ALL_FIGURES = (3, 4, 6, 7, 8, 9, 10, 11, 12, 13)


def write_tree(root: Path, labelled: bool = True) -> dict:
    """The example results tree under ``root``; returns its config (models and pairs)."""
    examples.write_example_results(
        root,
        pairs=PAIRS,
        datasets=DATASETS,
        labelled=("ag_news",) if labelled else (),
        steps=(0, 100),
        n_layers=2,
        table1=True,
    )
    return json.loads((root / "config.json").read_text())


def make_config(
    tree: dict,
    report=None,
    training=True,
    labelled=True,
    table1=True,
    untrained=(),
    mining=None,
    extra=(),
) -> dict:
    """A config (not yet validated) for the example tree: generated probe datasets cot and mmlu,
    ag_news labelled (and an HRSA dataset) when ``labelled``, snapshot steps 0 and 100."""
    config = copy.deepcopy(tree)
    for key, spec in config["models"].items():
        spec.setdefault("source", f"example/{key}")  # a hub id (Plan: exists -> False)
    for pair in untrained:
        config["pairs"][pair]["train"] = False
    config["probe_datasets"] = {
        "cot": {"generator": "arithmetic_traces"},
        "mmlu": {"generator": "multiple_choice"},
        "ag_news": {"generator": "topic_sentences", "labelled": labelled},
    }
    config["activations"] = {}
    config["hrsa"] = {"datasets": [*DATASETS, *(["ag_news"] if labelled else [])]}
    if labelled:
        config["hrsa"]["probe"] = {"dataset": "ag_news"}
    if extra:
        config["hrsa"]["extra_metrics"] = list(extra)
    config["training"] = {"enabled": training, "save_every": 100, "max_steps": 100}
    if mining is not None:
        config["training"]["mining"] = mining
    config["evaluation"] = {"enabled": table1}
    config["report"] = report or {}
    return config


def make_plan(config: dict) -> Plan:
    return Plan(validate_config(copy.deepcopy(config)), exists=lambda path: False)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Configs of the example tree with and without the labelled dataset (written once)."""
    root = tmp_path_factory.mktemp("report-trees")
    return {
        True: write_tree(root / "labelled", labelled=True),
        False: write_tree(root / "unlabelled", labelled=False),
    }


@pytest.fixture
def plan_for(trees):
    def build(labelled=True, **settings) -> Plan:
        return make_plan(make_config(trees[labelled], labelled=labelled, **settings))

    return build


def expected(tables, figures, pairs, dynamics) -> list[str]:
    """Every report file, under results/report/, of the given tables, figures and pairs."""
    files = [f"table{n}.{ext}" for n in tables for ext in ("csv", "md")]
    if 1 in tables:  # Table 1's appendix: every evaluated task's instruction
        files += ["instructions.csv", "instructions.md"]
    if 2 in tables:  # with Table 2: the RLVR family against the SFT family
        files.append("table2_rlvr_vs_sft.csv")
    stems = [f"figure{n}" for n in figures] + [f"pairs/{p}" for p in pairs]
    stems += [f"figure5/{p}" for p in dynamics]
    files += [f"{stem}.{ext}" for stem in stems for ext in ("png", "pdf")]
    return sorted(f"results/report/{name}" for name in ["README.md", *files])


def hrsa(pair, stage, dataset, name) -> str:
    return f"results/hrsa/{pair}/{stage}/{dataset}/{name}"


def report_inputs(plan: Plan) -> set[str]:
    """Every results/hrsa file the report rules read (their `input:` calls, over all
    wildcards of the planned targets)."""
    files = set(plan.hrsa_results("summary.json", datasets=[plan.main_dataset()]))
    files |= set(plan.probe_results())
    files |= set(
        plan.hrsa_results("metrics.csv", pairs=plan.figure3_pairs(), datasets=[plan.main_dataset()])
    )
    files |= set(plan.probe_results(pairs=plan.figure3_pairs()))
    for stage in plan.report_stages():
        files |= set(plan.hrsa_results("summary.json", stages=[stage]))
        files |= set(plan.hrsa_results("metrics.csv", stages=[stage]))
        files |= set(plan.probe_results(stages=[stage]))
    for pair in plan.dynamics_pairs():
        files |= set(plan.dynamics_results(pair))
    for pair in plan.pairs:
        files |= set(plan.hrsa_results("metrics.csv", pairs=[pair]))
    return files


# ---------------------------------------------------------------------------- outputs


def test_default_report_lists_every_table_and_figure(plan_for):
    plan = plan_for(extra=["feature_wasserstein"])
    table8 = [f"results/report/figure_table8.{ext}" for ext in ("csv", "pdf", "png")]
    assert sorted(plan.report_targets()) == sorted(
        expected(tables=ALL_TABLES, figures=ALL_FIGURES, pairs=PAIRS, dynamics=PAIRS) + table8
    )
    assert len(set(plan.report_targets())) == len(plan.report_targets())
    assert plan.report_targets()[0] == "results/report/README.md"
    assert sorted(plan.report_tables()) == expected(ALL_TABLES, (), (), ())[1:]
    assert sorted(plan.report_figures()) == sorted(
        expected((), ALL_FIGURES, PAIRS, PAIRS)[1:] + table8
    )
    # only the opt-in outputs: LoRA twins (training.lora) and CoT generation (cot_generation)
    assert set(plan.report_skipped()) == {"Table 6", "Table 11"}
    assert plan.extra_metrics() == ["feature_wasserstein"]
    assert plan.include_table1()
    assert plan.figure3_pairs() == ["sft", "prorl"]  # the first SFT and the first RLVR pair
    assert plan.report_stages() == ["backbone", "emb"]
    assert plan.dynamics_pairs() == ["sft", "prorl"]
    assert plan.main_dataset() == "cot"
    assert plan.probe_dataset() == "ag_news"


def test_report_without_training_evaluation_or_labels(plan_for):
    plan = plan_for(training=False, labelled=False, table1=False)
    assert sorted(plan.report_targets()) == expected(
        tables=(2, 3, 4, 12), figures=(3, 6, 8, 10), pairs=PAIRS, dynamics=()
    )
    assert plan.labelled_datasets == []
    assert plan.probe_dataset() is None
    assert plan.probe_results() == []
    assert plan.report_stages() == ["backbone"]
    assert not plan.include_table1()
    assert set(plan.report_skipped()) == {
        "Table 1",
        "Table 6",
        "Table 7",
        "Table 11",
        "Embedding-model outputs (Figures 7, 9, 11, 13; Table 13)",
        "Figures 4, 12, 13",
        "Figure 5",
        "Table 8 alternatives",
    }
    assert all(reason for reason in plan.report_skipped().values())
    # no embedding stage is read anywhere
    assert all("/emb/" not in path for path in report_inputs(plan))


def test_a_labelled_dataset_outside_the_hrsa_datasets_is_not_probed(trees):
    config = make_config(trees[True])
    config["hrsa"]["datasets"] = list(DATASETS)  # ag_news stays labelled, but is not analysed
    plan = make_plan(config)
    assert plan.labelled_datasets == []
    assert plan.probe_dataset() is None and plan.probe_results() == []
    assert "results/report/figure4.png" not in plan.report_targets()
    assert "Figures 4, 12, 13" in plan.report_skipped()


def test_report_settings_override_defaults(plan_for):
    plan = plan_for(report={"include_table1": False, "figure3_pairs": ["prorl"]})
    assert not plan.include_table1()
    assert "results/report/table1.csv" not in plan.report_targets()
    assert "Table 1" in plan.report_skipped()
    assert plan.figure3_pairs() == ["prorl"]
    figure3 = plan.hrsa_results(
        "metrics.csv", pairs=plan.figure3_pairs(), datasets=[plan.main_dataset()]
    )
    assert figure3 == [hrsa("prorl", s, "cot", "metrics.csv") for s in ("backbone", "emb")]
    assert all(not p.startswith("results/hrsa/sft/") for p in figure3)
    figure4 = plan.probe_results(pairs=plan.figure3_pairs())
    assert figure4 == [hrsa("prorl", s, "ag_news", "probe.csv") for s in ("backbone", "emb")]

    # Table 1 on demand without an evaluation in this config; other datasets for Tables 2-4
    plan = plan_for(table1=False, report={"include_table1": True, "main_dataset": "mmlu"})
    assert plan.include_table1() and "results/report/table1.csv" in plan.report_targets()
    assert "Table 1" not in plan.report_skipped()
    assert plan.main_dataset() == "mmlu"
    assert plan.hrsa_results("summary.json", datasets=[plan.main_dataset()]) == [
        hrsa(p, s, "mmlu", "summary.json") for p in PAIRS for s in ("backbone", "emb")
    ]


def test_pairs_that_do_not_train_have_no_embedding_inputs(plan_for):
    plan = plan_for(untrained=("sft",))
    figures = plan.report_figures()
    assert "results/report/figure5/prorl.png" in figures
    assert "results/report/figure5/sft.png" not in figures
    assert plan.dynamics_pairs() == ["prorl"]
    assert "Figure 5" not in plan.report_skipped()
    # Figure 7 (linear CKA... of the embedding models): prorl's only
    figure7 = plan.hrsa_results("metrics.csv", stages=["emb"])
    assert hrsa("prorl", "emb", "mmlu", "metrics.csv") in figure7
    assert all(not p.startswith("results/hrsa/sft/") for p in figure7)
    assert plan.report_pair_stages("sft") == ["backbone"]
    assert plan.hrsa_results("metrics.csv", pairs=["sft"]) == [
        hrsa("sft", "backbone", d, "metrics.csv") for d in plan.hrsa_datasets
    ]
    assert plan.probe_results(stages=["emb"]) == [hrsa("prorl", "emb", "ag_news", "probe.csv")]
    assert all("results/hrsa/sft/emb/" not in p for p in report_inputs(plan))
    # dynamics: the backbone stands for step 0, snapshots on the dynamics dataset only
    assert plan.dynamics_datasets() == ["cot"]
    assert plan.dynamics_results("prorl") == [
        hrsa("prorl", "backbone", "cot", "summary.json"),
        hrsa("prorl", "step100", "cot", "summary.json"),
    ]
    # the embedding-model outputs remain (prorl has them)
    assert "results/report/figure7.png" in figures and "results/report/figure13.png" in figures
    assert "results/report/table13.csv" in plan.report_tables()


def test_dynamics_on_configured_datasets(trees):
    config = make_config(trees[True])
    config["training"]["dynamics_datasets"] = ["mmlu"]
    plan = make_plan(config)
    assert plan.dynamics_results("sft") == [
        hrsa("sft", "backbone", "mmlu", "summary.json"),
        hrsa("sft", "step100", "mmlu", "summary.json"),
    ]


def test_every_report_input_is_an_hrsa_target(plan_for):
    """What the report reads, the HRSA rules make (nothing the DAG could not build)."""
    for plan in (
        plan_for(),
        plan_for(untrained=("sft",)),
        plan_for(training=False, labelled=False, table1=False),
    ):
        inputs = report_inputs(plan)
        assert inputs and inputs <= set(plan.hrsa_targets())


def test_table7_reads_the_training_data_reports(plan_for):
    plan = plan_for()
    assert plan.table7_inputs() == {
        "data": "results/data/train/contrastive.jsonl.report.json",
        "mining": "results/data/train/mined.jsonl.report.json",
    }
    plan = plan_for(mining={"enabled": False})
    assert plan.table7_inputs() == {"data": "results/data/train/contrastive.jsonl.report.json"}
    assert "results/report/table7.csv" in plan.report_tables()


def test_named_targets_are_one_table_or_one_pair(plan_for):
    """results/report/table{N}.csv and results/report/pairs/{pair}.png name outputs of the plan
    (the slow test checks Snakemake builds exactly them)."""
    plan = plan_for()
    targets = plan.report_targets()
    assert {"results/report/table4.csv", "results/report/table4.md"} <= set(targets)
    for pair in plan.pairs:
        assert {f"results/report/pairs/{pair}.png", f"results/report/pairs/{pair}.pdf"} <= set(
            targets
        )


def test_report_rules_run_locally():
    """Every rule of rules/report.smk is a local rule (reads a few small files and draws)."""
    text = (REPO / "rules" / "report.smk").read_text()
    rules = re.findall(r"^rule (\w+):", text, flags=re.MULTILINE)
    block = re.search(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", text, flags=re.MULTILINE)
    assert block, "rules/report.smk has no localrules block"
    local = re.findall(r"\w+", block.group(1))
    assert rules and sorted(rules) == sorted(local)


# ---------------------------------------------------------------------------- a real run


def snakemake(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "-s", "Snakefile", "-d", str(path), *args],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )


def planned(path: Path, *targets: str) -> set[str]:
    """Output files of the DAG for ``targets`` (Snakemake's --summary)."""
    run = snakemake(path, "--summary", *targets)
    assert run.returncode == 0, run.stderr[-3000:]
    return {line.split("\t")[0] for line in run.stdout.splitlines() if line.startswith("results/")}


@pytest.mark.slow(minutes=2)
def test_full_report_run_and_html(tmp_path):
    config = make_config(write_tree(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(config, indent=1))
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    listed = expected(tables=ALL_TABLES, figures=ALL_FIGURES, pairs=PAIRS, dynamics=PAIRS)
    assert sorted(make_plan(config).report_targets()) == listed

    # the DAG is the plan; a named target builds one table or one pair
    assert planned(tmp_path, "report_all") == set(listed)
    assert planned(tmp_path, "results/report/table4.csv") == {
        "results/report/table4.csv",
        "results/report/table4.md",
    }
    assert planned(tmp_path, "results/report/pairs/prorl.png") == {
        "results/report/pairs/prorl.png",
        "results/report/pairs/prorl.pdf",
    }

    run = snakemake(tmp_path, "--cores", "2", "report_all")
    assert run.returncode == 0, run.stderr[-3000:]
    report = tmp_path / "results" / "report"
    made = sorted(p.relative_to(tmp_path).as_posix() for p in report.rglob("*") if p.is_file())
    assert made == listed  # nothing missing, no temporary files left
    text = (report / "README.md").read_text()
    for name in listed:
        if not name.endswith("README.md"):
            assert f"]({name.removeprefix('results/report/')})" in text
    # Table 2's companion: the RLVR pair against the SFT pair, in its CSV, Table 2 and the README
    families = pd.read_csv(report / "table2_rlvr_vs_sft.csv")
    assert set(families["stage"]) == {"backbone", "emb"}
    assert set(families["closer"]) <= {"RLVR", "SFT", "tie"}
    assert (families[["rlvr_pairs", "sft_pairs"]] == 1).all().all()
    assert "## RLVR vs SFT" in (report / "table2.md").read_text() and "## RLVR vs SFT" in text

    html = snakemake(tmp_path, "--report", "report.html", "report_all")
    assert html.returncode == 0, html.stderr[-3000:]
    assert "Reproduces <strong>Table 3</strong>" in (tmp_path / "report.html").read_text()
