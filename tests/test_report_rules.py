"""rules/report.smk: the report's DAG follows the config; a full run writes every listed file.

The rules are included from a stub Snakefile that defines what rules/common.smk provides
(PAIRS, HRSA_DATASETS, PROBE_DATASETS_LABELLED, STAGES_MAIN, dynamics_steps), over a hand-made
results tree (hrsa.report.examples).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hrsa.report import examples

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
STUB = """\
configfile: "config.json"

PAIRS = list(config["pairs"])
HRSA_DATASETS = {datasets!r}
PROBE_DATASETS_LABELLED = {labelled!r}
STAGES_MAIN = ["backbone", "emb"]


def dynamics_steps(pair):
    return {steps!r}


include: {rules!r}
"""


def workdir(tmp_path, report=None, training=True, labelled=("ag_news",), table1=True, untrained=()):
    examples.write_example_results(
        tmp_path,
        pairs=("sft", "prorl"),
        datasets=("cot", "mmlu"),
        labelled=labelled,
        steps=(0, 100),
        n_layers=2,
        table1=table1,
    )
    config = json.loads((tmp_path / "config.json").read_text())
    config["report"] = report or {}
    config["training"] = {"enabled": training}
    config["evaluation"] = {"enabled": table1}
    for pair in untrained:
        config["pairs"][pair]["train"] = False
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "Snakefile").write_text(
        STUB.format(
            datasets=["cot", "mmlu"],
            labelled=list(labelled),
            steps=[0, 100],
            rules=str(REPO / "rules" / "report.smk"),
        )
    )
    return tmp_path


def planned(path, *targets):
    """Output files of the DAG for ``targets`` (Snakemake's --summary), relative to results/."""
    run = subprocess.run(
        [*SNAKEMAKE, "-s", "Snakefile", "-d", str(path), "--summary", *targets],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    rows = [line.split("\t") for line in run.stdout.splitlines() if line.startswith("results/")]
    return {row[0].removeprefix("results/report/") for row in rows}


def expected(tables, figures, pairs, dynamics):
    stems = [f"table{n}" for n in tables]
    files = {f"{stem}.{ext}" for stem in stems for ext in ("csv", "md")}
    stems = [f"figure{n}" for n in figures] + [f"pairs/{p}" for p in pairs]
    stems += [f"figure5/{p}" for p in dynamics]
    return files | {f"{stem}.{ext}" for stem in stems for ext in ("png", "pdf")} | {"README.md"}


def test_default_report_lists_every_table_and_figure(tmp_path):
    path = workdir(tmp_path)
    assert planned(path, "report_all") == expected(
        tables=(1, 2, 3, 4, 7, 12, 13),
        figures=(3, 4, 6, 7, 8, 9, 10, 11, 12, 13),
        pairs=("sft", "prorl"),
        dynamics=("sft", "prorl"),
    )


def test_report_without_training_evaluation_or_labels(tmp_path):
    path = workdir(tmp_path, training=False, labelled=(), table1=False)
    assert planned(path, "report_all") == expected(
        tables=(2, 3, 4, 12),
        figures=(3, 6, 8, 10),
        pairs=("sft", "prorl"),
        dynamics=(),
    )


def test_report_settings_override_defaults(tmp_path):
    report = {"include_table1": False, "figure3_pairs": ["prorl"]}
    path = workdir(tmp_path, report=report)
    assert "table1.csv" not in planned(path, "report_all")
    out = dry_run(path, "report_figure3")
    assert "results/hrsa/prorl/emb/cot/metrics.csv" in out
    assert "results/hrsa/sft/" not in out


def dry_run(path, *targets):
    run = subprocess.run(
        [*SNAKEMAKE, "-s", "Snakefile", "-d", str(path), "-n", "-p", *targets],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_pairs_that_do_not_train_have_no_embedding_inputs(tmp_path):
    path = workdir(tmp_path, untrained=("sft",))
    files = planned(path, "report_all")
    assert "figure5/prorl.png" in files and "figure5/sft.png" not in files
    out = dry_run(path, "results/report/figure7.png", "results/report/figure5/prorl.png")
    assert "results/hrsa/prorl/emb/mmlu/metrics.csv" in out
    assert "results/hrsa/sft/emb/" not in out
    # dynamics: the backbone stands for step 0, snapshots on the first dataset only
    assert "results/hrsa/prorl/backbone/cot/summary.json" in out
    assert "results/hrsa/prorl/step100/cot/summary.json" in out
    assert "step0/" not in out and "step100/mmlu" not in out


def test_named_targets_build_one_table_or_one_pair(tmp_path):
    path = workdir(tmp_path)
    assert planned(path, "results/report/table4.csv") == {"table4.csv", "table4.md"}
    assert planned(path, "results/report/pairs/prorl.png") == {"pairs/prorl.png", "pairs/prorl.pdf"}


def test_table7_reads_the_training_data_reports(tmp_path):
    path = workdir(tmp_path)
    out = dry_run(path, "results/report/table7.csv")
    assert "results/data/train/contrastive.jsonl.report.json" in out
    assert "results/data/train/mined.jsonl.report.json" in out
    config = json.loads((path / "config.json").read_text())
    config["training"]["mining"] = {"enabled": False}
    (path / "config.json").write_text(json.dumps(config))
    out = dry_run(path, "results/report/table7.csv")
    assert "contrastive.jsonl.report.json" in out and "mined.jsonl.report.json" not in out


@pytest.mark.slow
def test_full_report_run_and_html(tmp_path):
    path = workdir(tmp_path)
    run = subprocess.run(
        [*SNAKEMAKE, "-s", "Snakefile", "-d", str(path), "--cores", "2", "report_all"],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = path / "results" / "report"
    made = {p.relative_to(report).as_posix() for p in report.rglob("*") if p.is_file()}
    listed = expected(
        tables=(1, 2, 3, 4, 7, 12, 13),
        figures=(3, 4, 6, 7, 8, 9, 10, 11, 12, 13),
        pairs=("sft", "prorl"),
        dynamics=("sft", "prorl"),
    )
    assert made == listed  # nothing missing, no temporary files left
    text = (report / "README.md").read_text()
    for name in listed - {"README.md"}:
        assert f"]({name})" in text
    html = subprocess.run(
        [*SNAKEMAKE, "-s", "Snakefile", "-d", str(path), "--report", "report.html", "report_all"],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert html.returncode == 0, html.stderr[-3000:]
    assert "Reproduces <strong>Table 3</strong>" in (path / "report.html").read_text()
