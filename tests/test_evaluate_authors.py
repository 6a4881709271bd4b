"""The authors' published instructions (``evaluation.prompts: {authors: ...}``), read at run time.

No network and none of the authors' text: the files here are made up, in the shape of their
``evaluation/task_prompts.json`` (task -> instruction or {query, passage}, plus ``default``) and
``evaluation/evaluate_bright.py`` (a dict literal ``Instructions = {domain: instruction}``).
Downloads go through a file:// URL or a replaced :func:`hrsa.prefetch.fetch_url`.

The coverage check runs over mteb's own task lists of the paper's three benchmarks (metadata
only, offline); the evaluation test runs the offline HRSA-Local tasks through mteb.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hrsa import prefetch
from hrsa.errors import DataError
from hrsa.evaluate import aggregate
from hrsa.evaluate.authors import (
    BRIGHT_TASK,
    AuthorsInstructions,
    check_file,
    parse_bright_instructions,
    parse_task_prompts,
)
from hrsa.evaluate.instructions import (
    DEFAULT_TEMPLATE,
    INSTRUCTION_COLUMNS,
    SOURCES,
    Instructions,
    load_instructions,
)
from hrsa.report import collect, tables

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts.yaml"
PAPER_BENCHMARKS = ("MTEB(Multilingual, v2)", "MTEB(Code, v1)", "BRIGHT")
BRIGHT_DOMAINS = (
    "biology earth_science economics psychology robotics stackoverflow sustainable_living pony "
    "leetcode aops theoremqa_theorems theoremqa_questions"
).split()

# Made-up instructions in the authors' format (never their text).
AUTHORS = {
    "default": "Made-up default: find the passage that fits",
    "HRSAArithmeticRetrieval": "Made-up: find the worked answer to this sum",
    "HRSATopicClassification": {
        "query": "Made-up: sort this news line by topic",
        "passage": "Made-up: a passage-side instruction nobody should get",
    },
    "AppsRetrieval": "Made-up: find code that solves this problem",
    "STS22.v2": "Made-up: find a sentence with the same meaning",
}
BRIGHT_PY = (
    "import sys\n"
    "raise SystemExit('made-up file: it is read, never run')\n\n\n"
    "def evaluate_bright(task, model):\n"
    "    Instructions = {\n"
    + "".join(f'        "{d}": "Made-up: help with this {d} post",\n' for d in BRIGHT_DOMAINS)
    + "    }\n"
    "    return Instructions\n"
)


@pytest.fixture
def authors_files(tmp_path):
    tasks = tmp_path / "task_prompts.json"
    tasks.write_text(json.dumps(AUTHORS, indent=4))
    bright = tmp_path / "evaluate_bright.py"
    bright.write_text(BRIGHT_PY)
    return tasks, bright


def settings(tasks, bright=None, unlisted="authors_default") -> dict:
    """What Plan.eval_instruction_settings hands the evaluation for local files."""
    return {
        "authors": str(tasks),
        "authors_origin": str(tasks),
        "authors_bright": str(bright) if bright else None,
        "authors_bright_origin": str(bright) if bright else None,
        "unlisted": unlisted,
    }


# ---------------------------------------------------------------------------- reading the files


def test_task_prompts_are_read_in_the_authors_shape():
    tasks, default, notes = parse_task_prompts(json.dumps(AUTHORS))
    assert default == AUTHORS["default"] and "default" not in tasks
    assert tasks["AppsRetrieval"] == AUTHORS["AppsRetrieval"]
    # a {query, passage} entry: queries get the query, passages nothing
    assert tasks["HRSATopicClassification"] == AUTHORS["HRSATopicClassification"]["query"]
    assert "query/passage" in notes["HRSATopicClassification"]
    # a task named twice keeps its last entry, as json.load did for the authors
    text = '{"T": "first", "T": "second", "default": "d"}'
    tasks, _, notes = parse_task_prompts(text)
    assert tasks == {"T": "second"} and "named 2 times" in notes["T"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>404: Not Found</html>", "not JSON"),
        ('["a list"]', "JSON object"),
        ('{"T": {"passage": "p"}}', "'T': a mapping needs a non-empty 'query'"),
        ('{"T": ""}', "'T': expected a non-empty string"),
        ('{"T": 3}', "'T': expected a non-empty string"),
        ('{"default": ""}', "'default' must be a non-empty string"),
    ],
)
def test_a_malformed_task_prompts_file_names_the_file_and_the_task(text, message):
    with pytest.raises(DataError, match=f"authors' instruction file 'where.json': .*{message}"):
        parse_task_prompts(text, "where.json")


def test_bright_instructions_are_read_from_the_dict_literal_without_running_it(tmp_path):
    found = parse_bright_instructions(BRIGHT_PY, "evaluate_bright.py")  # would SystemExit if run
    assert list(found) == BRIGHT_DOMAINS
    assert found["pony"] == "Made-up: help with this pony post"
    assert parse_bright_instructions(json.dumps({"pony": "p"})) == {"pony": "p"}  # JSON too
    with pytest.raises(DataError, match="found 0"):
        parse_bright_instructions("x = {'pony': 'p'}\n", "b.py")
    with pytest.raises(DataError, match="found 2"):
        parse_bright_instructions("Instructions = {'a': 'b'}\nInstructions = {'c': 'd'}\n")
    with pytest.raises(DataError, match="not a literal"):
        parse_bright_instructions("Instructions = {'pony': make()}\n")
    with pytest.raises(DataError, match="no instruction text"):
        parse_bright_instructions('{"pony": ""}')
    with pytest.raises(DataError, match="neither JSON nor Python"):
        parse_bright_instructions("<html>", "b.py")
    with pytest.raises(ValueError, match="kind"):
        check_file("other", tmp_path)


# ---------------------------------------------------------------------------- the lookup


def test_lookup_order_and_sources(authors_files):
    tasks, bright = authors_files
    ins = load_instructions(PROMPTS, settings(tasks, bright))
    assert isinstance(ins, AuthorsInstructions) and ins.template == DEFAULT_TEMPLATE

    def got(task, task_type="Retrieval", subset="default"):
        r = ins.resolve(task, task_type, subset)
        return r.instruction, r.source

    assert got("AppsRetrieval") == (AUTHORS["AppsRetrieval"], "authors_task")
    assert got(BRIGHT_TASK, subset="aops") == (
        "Made-up: help with this aops post",
        "authors_bright",
    )
    # a task the file lacks gets the file's default, as the authors' evaluate_mteb.py does
    assert got("CosQA") == (AUTHORS["default"], "authors_default")
    # a BRIGHT domain the authors' BRIGHT file lacks: this project's (BRIGHT never got their
    # default: their evaluate_bright.py has its own instructions)
    project = Instructions.from_yaml(PROMPTS)
    assert got(BRIGHT_TASK, subset="new_domain") == (
        project.task_types["Retrieval"],
        "project_task_type",
    )
    note = ins.resolve(BRIGHT_TASK, "Retrieval", "new_domain").note
    assert note == "domain 'new_domain' not in the authors' BRIGHT instructions"
    resolved = ins.resolve("AppsRetrieval")
    assert resolved.origin == str(tasks) and len(resolved.sha256) == 64
    assert ins.resolve(BRIGHT_TASK, "Retrieval", "pony").origin == str(bright)
    assert ins.prefix("AppsRetrieval") == DEFAULT_TEMPLATE.format(
        instruction=AUTHORS["AppsRetrieval"]
    )

    # unlisted: fallback - this project's file for every task the authors' file lacks
    ins = load_instructions(PROMPTS, settings(tasks, bright, unlisted="fallback"))
    assert got("CosQA") == (project.instruction("CosQA", "Retrieval"), "project_task")
    assert got("SomeNewSTS", "STS") == (project.task_types["STS"], "project_task_type")
    assert got("SomeNewTask", "NoSuchType") == (project.default, "project_default")
    fallback = ins.resolve("CosQA", "Retrieval")
    assert fallback.origin == str(PROMPTS) and "not in the authors' file" in fallback.note
    # without the BRIGHT file, BRIGHT falls back per domain to the project's instructions
    ins = load_instructions(PROMPTS, settings(tasks, None))
    assert got(BRIGHT_TASK, subset="pony") == (
        project.instruction(BRIGHT_TASK, "Retrieval", "pony"),
        "project_task",
    )
    # a file without a default falls back even with unlisted: authors_default
    tasks.write_text(json.dumps({"AppsRetrieval": "Made-up: x"}))
    ins = load_instructions(PROMPTS, settings(tasks))
    assert got("CosQA")[1] == "project_task"
    assert "which has no default" in ins.resolve("CosQA").note
    # the plain form is unchanged
    assert load_instructions(PROMPTS) == project
    assert load_instructions(None) is None
    with pytest.raises(ValueError, match="fallback"):
        load_instructions(None, settings(tasks))


# ---------------------------------------------------------------------------- download


def test_prefetch_downloads_checks_and_records_a_file_url(authors_files, tmp_path):
    tasks, bright = authors_files
    out, record = tmp_path / "p" / "authors.raw", tmp_path / "p" / "authors.json"
    info = prefetch.prefetch_authors_file("authors", tasks.as_uri(), out, record)
    assert out.read_bytes() == tasks.read_bytes()
    assert json.loads(record.read_text()) == info
    assert info["url"] == tasks.as_uri() and info["bytes"] == tasks.stat().st_size
    assert info["sha256"] == aggregate_sha(tasks)
    info = prefetch.prefetch_authors_file("authors_bright", bright.as_uri(), out, record)
    assert out.read_bytes() == bright.read_bytes()
    assert prefetch.is_url(tasks.as_uri()) and prefetch.is_url("https://x.org/a.json")
    assert not prefetch.is_url("config/prompts.yaml") and not prefetch.is_url(str(tasks))


def aggregate_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failed_or_wrong_download_names_the_url_and_leaves_nothing(monkeypatch, tmp_path):
    url = "https://raw.githubusercontent.com/example/repo/0123abcd/task_prompts.json"
    out, record = tmp_path / "authors.raw", tmp_path / "authors.json"

    def unreachable(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(prefetch, "fetch_url", unreachable)
    with pytest.raises(DataError, match=f"cannot download {url}: .*no route to host"):
        prefetch.prefetch_authors_file("authors", url, out, record)
    monkeypatch.setattr(prefetch, "fetch_url", lambda url, timeout=None: b"<html>404</html>")
    with pytest.raises(DataError, match=f"'{url}': not JSON"):
        prefetch.prefetch_authors_file("authors", url, out, record)
    assert sorted(tmp_path.iterdir()) == []  # no file, no record, no temporary left


# ---------------------------------------------------------------------------- the report


def run_table(benchmark: str, rows: list[tuple]) -> pd.DataFrame:
    """A run's instruction table from (task, subset, instruction, source, origin) rows."""
    return pd.DataFrame(
        [
            {
                "benchmark": benchmark,
                "task": task,
                "subset": subset,
                "task_type": "Retrieval",
                "instruction": text,
                "source": source,
                "origin": origin,
                "sha256": "ab" * 32 if origin else "",
                "template": DEFAULT_TEMPLATE if text else "",
                "document_instruction": "",
                "note": "",
            }
            for task, subset, text, source, origin in rows
        ],
        columns=INSTRUCTION_COLUMNS,
    )


def test_gathered_instructions_make_the_appendix_and_tables_note(tmp_path):
    rows = [
        ("AppsRetrieval", "default", "Made-up: apps", "authors_task", "a.json"),
        ("CosQA", "default", "Made-up: default", "authors_default", "a.json"),
        ("CodeSearchNetRetrieval", "go", "Made-up: csn", "authors_task", "a.json"),
        ("CodeSearchNetRetrieval", "ruby", "Made-up: csn", "authors_task", "a.json"),
        ("StackOverflowQA", "default", "Project type", "project_task_type", "p.yaml"),
    ]
    files = []
    for model in ("base", "reason"):
        path = tmp_path / f"{model}.instructions.csv"
        run_table("MTEB(Code, v1)", rows).to_csv(path, index=False)
        files.append(aggregate.ScoreFile(model, "emb", 0, "MTEB(Code, v1)", path))
    # a published model with its own query prompt: every query gets it
    own = [(t, sub, "Own prompt", "model_prompt", "hub/own-model") for t, sub, *_ in rows]
    path = tmp_path / "own.instructions.csv"
    run_table("MTEB(Code, v1)", own).to_csv(path, index=False)
    files.append(aggregate.ScoreFile("own", "emb", 0, "MTEB(Code, v1)", path))
    gathered, problems = aggregate.gather_instructions(
        [*files, aggregate.ScoreFile("gone", "emb", 0, "MTEB(Code, v1)", tmp_path / "no.csv")]
    )
    assert problems == [f"missing instruction table {tmp_path / 'no.csv'}"]
    apps = gathered[gathered["task"] == "AppsRetrieval"].set_index("source")
    assert apps.loc["authors_task", "runs"] == "base/emb/seed0; reason/emb/seed0"
    assert apps.loc["model_prompt", "n_runs"] == 1
    assert len(gathered) == 2 * len(rows)
    csv = tmp_path / "instructions.csv"
    gathered.to_csv(csv, index=False)

    frame = collect.read_instructions(csv)
    appendix = tables.instructions_appendix(frame)
    csn = appendix.frame[appendix.frame["task"] == "CodeSearchNetRetrieval"]
    assert len(csn) == 2  # the recipe's instruction and the published model's own prompt
    assert list(csn["subsets"]) == ["all", "all"] and list(csn["n_subsets"]) == [2, 2]
    assert set(appendix.frame["runs"]) == {"base/emb/seed0; reason/emb/seed0", "own/emb/seed0"}
    alone = tables.instructions_appendix(frame[frame["source"] != "model_prompt"])
    assert set(alone.frame["runs"]) == {"all"} and "Runs" not in alone.markdown
    md = appendix.markdown
    for text in ("Made-up: apps", "Made-up: default", "Project type", "Own prompt"):
        assert text in md
    assert "| authors: task |" in md and "| project: task type |" in md and "Runs" in md
    assert "`a.json` (sha256 `" in md and "Instruct: {instruction}\\nQuery: " in md
    note = aggregate.instruction_set_note(frame)
    assert "the authors' per-task instructions for 2 tasks from `a.json`" in note
    assert "this project's task-type fallbacks for 1 task from `p.yaml`" in note
    assert note.endswith("`instructions.md`.")
    assert aggregate.sources_by_benchmark(frame) == {
        "MTEB(Code, v1)": "authors_task: 2 tasks; authors_default: 1 task; "
        "project_task_type: 1 task; model_prompt: 4 tasks"
    }
    table1 = pd.DataFrame(
        [
            {
                "pair": "p",
                "family": "RLVR",
                "benchmark": "MTEB(Code, v1)",
                "base_mean": 0.5,
                "reasoning_mean": 0.51,
                "delta_mean": 0.01,
                "delta_std": 0.001,
                "n_seeds": 3,
                "base_embedding": "trained",
                "reasoning_embedding": "trained",
            }
        ]
    )
    pairs = collect.pairs_from_config(
        {"p": {"base": "base", "reasoning": "reason", "family": "RLVR", "algorithm": "GRPO"}}, {}
    )
    table = tables.table1(table1, pairs, instructions=frame)
    assert note in table.markdown
    assert table.frame["instructions"].iloc[0].startswith("authors_task: 2 tasks")
    assert "instructions" not in tables.table1(table1, pairs).frame.columns


# ---------------------------------------------------------------------------- with mteb


@pytest.fixture(scope="module")
def mteb():
    return pytest.importorskip("mteb")


@pytest.fixture(scope="module")
def paper_tasks(mteb):
    """mteb's task lists of the paper's benchmarks (metadata only: offline)."""
    from hrsa.evaluate.run import benchmark_tasks

    return {bench: benchmark_tasks(bench) for bench in PAPER_BENCHMARKS}


def test_paper_benchmarks_are_listed_offline(paper_tasks):
    counts = {bench: len(tasks) for bench, tasks in paper_tasks.items()}
    assert counts == {"MTEB(Multilingual, v2)": 131, "MTEB(Code, v1)": 12, "BRIGHT": 1}
    (bright,) = paper_tasks["BRIGHT"]
    assert bright.metadata.name == BRIGHT_TASK and sorted(bright.hf_subsets) == sorted(
        BRIGHT_DOMAINS
    )


@pytest.mark.parametrize("which", ["project", "authors", "authors_fallback"])
def test_every_task_of_the_paper_gets_one_query_instruction_and_documents_none(
    which, paper_tasks, tiny_models, authors_files
):
    """Through the encoder's own :meth:`prefix` (what ``encode`` calls), for every (task,
    subset) of MTEB(Multilingual, v2), MTEB(Code, v1) and BRIGHT: exactly one non-empty query
    instruction (one per task; BRIGHT one per domain) and no instruction on documents."""
    from hrsa.evaluate.encoder import InstructionMeanPoolEncoder

    tasks, bright = authors_files
    authors = {
        "project": None,
        "authors": settings(tasks, bright),
        "authors_fallback": settings(tasks, bright, unlisted="fallback"),
    }[which]
    encoder = InstructionMeanPoolEncoder(
        tiny_models["base"], name="hrsa/check", instructions=load_instructions(PROMPTS, authors)
    )
    for bench, task_objs in paper_tasks.items():
        table = pd.DataFrame(encoder.instruction_rows(task_objs, bench))
        assert len(table) == sum(len(t.hf_subsets) for t in task_objs), bench
        assert not table.duplicated(["task", "subset"]).any(), bench
        assert (table["instruction"].str.strip() != "").all(), bench
        assert (table["document_instruction"] == "").all(), bench
        assert set(table["source"]) <= set(SOURCES) - {"none", "model_prompt"}
        assert (table["template"] == DEFAULT_TEMPLATE).all()
        per_task = table.groupby("task")["instruction"].nunique()
        if bench == "BRIGHT":
            assert per_task[BRIGHT_TASK] == len(BRIGHT_DOMAINS)  # one per domain
        else:
            assert (per_task == 1).all(), per_task[per_task != 1]
        if which != "project":
            sources = set(table["source"])
            assert {"authors_task", "authors_bright"} & sources or bench == "MTEB(Multilingual, v2)"
            if bench != "BRIGHT":  # BRIGHT: every domain in the authors' BRIGHT file
                assert (which == "authors") == ("authors_default" in sources)
    code = pd.DataFrame(encoder.instruction_rows(paper_tasks["MTEB(Code, v1)"], "c"))
    apps = code.set_index("task").loc["AppsRetrieval"]
    if which == "project":
        assert apps["source"] == "project_task" and apps["origin"] == str(PROMPTS)
    else:
        assert apps["instruction"] == AUTHORS["AppsRetrieval"] and apps["origin"] == str(tasks)


def test_evaluation_on_local_tasks_uses_the_authors_file_and_reports_it(
    mteb, tiny_models, authors_files, tmp_path, monkeypatch
):
    """The offline tasks evaluated with an authors'-format file: queries get the file's
    instructions (documents none), the run's instruction table says so, Table 1's gathered
    table and the report's appendix show the file's prompts."""
    from hrsa.evaluate import encoder as encoder_module
    from hrsa.evaluate.local_tasks import TIERS
    from hrsa.evaluate.run import evaluate_benchmark

    tasks, bright = authors_files
    calls = []
    real = encoder_module.embed_texts

    def spy(model, tokenizer, texts, **kwargs):
        calls.append((texts[0], kwargs["instruction"]))
        return real(model, tokenizer, texts, **kwargs)

    monkeypatch.setattr(encoder_module, "embed_texts", spy)
    out = tmp_path / "run"
    scores = evaluate_benchmark(
        tiny_models["base"],
        cache_dir=out / "cache",
        scores_csv=out / "HRSA-Local.csv",
        instructions_csv=out / "HRSA-Local.instructions.csv",
        benchmark="HRSA-Local",
        model_name="hrsa/authors-emb-seed0",
        prompts=PROMPTS,
        authors=settings(tasks, bright, unlisted="fallback"),
        batch_size=256,
        max_length=64,
    )
    assert (scores["status"] == "ok").all()
    documents = {ins for text, ins in calls if text.startswith("Step 1:")}
    queries = {ins for text, ins in calls if text.startswith("Question:")}
    assert documents == {None}
    assert queries == {AUTHORS["HRSAArithmeticRetrieval"]}
    used = {ins for _, ins in calls}
    assert AUTHORS["HRSATopicClassification"]["query"] in used
    assert AUTHORS["HRSATopicClassification"]["passage"] not in used

    run = aggregate.read_instruction_table(out / "HRSA-Local.instructions.csv")
    by_task = run.drop_duplicates("task").set_index("task")
    assert by_task.loc["HRSAArithmeticRetrieval", "source"] == "authors_task"
    assert (
        by_task.loc["HRSATopicClassification", "instruction"]
        == (AUTHORS["HRSATopicClassification"]["query"])
    )
    assert "query/passage" in by_task.loc["HRSATopicClassification", "note"]
    project = Instructions.from_yaml(PROMPTS)
    assert by_task.loc["HRSATopicSTS", "source"] == "project_task"  # not in the file: fallback
    assert by_task.loc["HRSATopicSTS", "instruction"] == project.instruction("HRSATopicSTS")
    assert (run["document_instruction"] == "").all()
    assert set(run.loc[run["task"] == "HRSAArithmeticRetrieval", "subset"]) == set(TIERS)

    # Table 1 gathers the runs' tables; the report's appendix shows the file's prompts
    run_file = aggregate.ScoreFile(
        "tiny-base", "emb", 0, "HRSA-Local", out / "HRSA-Local.instructions.csv"
    )
    table1_md = tmp_path / "table1.md"
    aggregate.write_table1(
        [aggregate.ScoreFile("tiny-base", "emb", 0, "HRSA-Local", out / "HRSA-Local.csv")],
        pairs={"p": {"base": "tiny-base", "reasoning": "tiny-base", "family": "SFT"}},
        benchmarks=["HRSA-Local"],
        table_csv=tmp_path / "table1.csv",
        table_md=table1_md,
        summary_csv=tmp_path / "summary.csv",
        instruction_files=[run_file],
        instructions_csv=tmp_path / "instructions.csv",
    )
    assert f"the authors' per-task instructions for 2 tasks from `{tasks}`" in (
        table1_md.read_text()
    )
    appendix = tables.instructions_appendix(
        collect.read_instructions(tmp_path / "instructions.csv")
    )
    appendix.write(csv=tmp_path / "appendix.csv", markdown=tmp_path / "appendix.md")
    md = (tmp_path / "appendix.md").read_text()
    assert AUTHORS["HRSAArithmeticRetrieval"] in md
    assert AUTHORS["HRSATopicClassification"]["query"] in md
    assert AUTHORS["HRSATopicClassification"]["passage"] not in md
    assert "| HRSA-Local | HRSATopicSTS | STS | all |" in md and "project: task" in md
    assert f"`{tasks}` (sha256 `{aggregate_sha(tasks)}`)" in md


# ---------------------------------------------------------------------------- the workflow


def test_paper_config_with_the_authors_instructions_plans_the_download_in_prefetch(tmp_path):
    """``snakemake -n`` (offline) with config/paper.yaml plus ``evaluation.prompts: {authors:
    <URL>}``: the `prefetch` target downloads both of the authors' files, and every evaluation
    reads the downloads and writes its instruction table."""
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    url = "https://raw.githubusercontent.com/example/repo/0123abcd/evaluation/task_prompts.json"
    cfg["evaluation"]["prompts"] = {"authors": url}
    path = tmp_path / "paper-authors.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path)]

    def dry(*targets):
        proc = subprocess.run(
            [*cmd, "-n", *targets, "--configfile", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    out = dry("prefetch")
    assert "rule prefetch_prompts:" in out
    for source in ("authors", "authors_bright"):
        assert f"results/prefetch/prompts/{source}.raw, results/prefetch/prompts/{source}.json" in (
            out
        )
    out = dry("results/mteb/qwen2.5-1.5b/emb/seed0/BRIGHT.instructions.csv")
    assert "results/prefetch/prompts/authors.raw" in out and "rule evaluate_mteb:" in out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow(minutes=2)
def test_workflow_evaluates_with_a_local_authors_file_to_table1(tmp_path, authors_files):
    """The rules themselves (evaluate_mteb -> mteb_table1) with a local authors'-format file, on
    the default config's offline benchmark (stub checkpoints: tests/test_evaluate_workflow.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_evaluate_workflow import config_file, snakemake

    tasks, bright = authors_files
    evaluation = {
        "enabled": True,
        "benchmarks": ["HRSA-Local"],
        "max_length": 64,
        "prompts": {"authors": str(tasks), "authors_bright": str(bright)},
    }
    cfg = config_file(tmp_path, evaluation, training={"enabled": True, "seeds": [0]})
    work, out = snakemake(
        tmp_path, "--cores", "2", "results/mteb/table1.csv", "--configfile", str(cfg)
    )
    assert "prefetch_prompts" not in out  # a local file: no download
    res = work / "results" / "mteb"
    run = aggregate.read_instruction_table(
        res / "tiny-base" / "emb" / "seed0" / "HRSA-Local.instructions.csv"
    )
    by_task = run.drop_duplicates("task").set_index("task")["source"].to_dict()
    assert by_task == {
        "HRSAArithmeticRetrieval": "authors_task",
        "HRSATopicClassification": "authors_task",
        "HRSATopicClustering": "authors_default",
        "HRSATopicSTS": "authors_default",
    }
    gathered = collect.read_instructions(res / "instructions.csv")
    assert set(gathered["n_runs"]) == {"3"}  # tiny-base, tiny-rlvr, tiny-sft: the same
    assert AUTHORS["HRSAArithmeticRetrieval"] in set(gathered["instruction"])
    assert "the authors' per-task instructions for 2 tasks" in (res / "table1.md").read_text()
