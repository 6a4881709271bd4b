"""docs/architecture.md stays true to the workflow.

- Its Mermaid rule graph is exactly the union of the rule graphs Snakemake reports
  (``--rulegraph mermaid-js``) for config/config.yaml and config/paper.yaml, without ``all``.
- Every rule of rules/*.smk and the Snakefile is in that diagram or listed under "Rules outside
  the diagram", so a new rule cannot go undocumented.

On a mismatch the failure prints the whole correct block. ``python tests/test_architecture_doc.py``
prints it too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
CONFIGS = ("config/config.yaml", "config/paper.yaml")
OMITTED = {"all"}  # left out of the diagram: it only gathers every target
OUTSIDE_HEADING = "### Rules outside the diagram"

Graph = tuple[set[str], set[tuple[str, str]]]

_NODE = re.compile(r"^\s*(id\d+)\[([A-Za-z_]\w*)\]\s*$")
_EDGE = re.compile(r"^\s*(id\d+)\s*-->\s*(id\d+)\s*$")
_DOC_EDGE = re.compile(r"^\s*([A-Za-z_]\w*)\s*-->\s*([A-Za-z_]\w*)\s*;?\s*$")
_DOC_NODE = re.compile(r"^\s*([A-Za-z_]\w*)\s*;?\s*$")
_RULE = re.compile(r"^(?:rule|checkpoint)\s+([A-Za-z_]\w*)\s*:", re.MULTILINE)


# --------------------------------------------------------------------------- parsing


def parse_rulegraph(text: str) -> Graph:
    """Rule names and (upstream, downstream) edges of Snakemake's ``mermaid-js`` output."""
    names, edges = {}, set()
    for line in text.splitlines():
        if m := _NODE.match(line):
            names[m[1]] = m[2]
        elif m := _EDGE.match(line):
            edges.add((m[1], m[2]))
    if not names:
        raise AssertionError(f"no rule graph in snakemake's output:\n{text[-3000:]}")
    return set(names.values()), {(names[a], names[b]) for a, b in edges}


def rulegraph(configfile: str, workdir: Path) -> Graph:
    """Snakemake's rule graph of the workflow run with ``configfile`` (from the repository)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(workdir),
            "--configfile",
            str(ROOT / configfile),
            "--rulegraph",
            "mermaid-js",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"--rulegraph for {configfile} failed:\n{proc.stderr[-4000:]}")
    return parse_rulegraph(proc.stdout)


def union_graph(workdir: Path) -> Graph:
    """Union over CONFIGS, without the OMITTED rules and their edges."""
    nodes, edges = set(), set()
    for i, configfile in enumerate(CONFIGS):
        work = workdir / f"config{i}"
        work.mkdir()
        n, e = rulegraph(configfile, work)
        nodes |= n
        edges |= e
    nodes -= OMITTED
    edges = {(a, b) for a, b in edges if a not in OMITTED and b not in OMITTED}
    return nodes, edges


def render(graph: Graph) -> str:
    """The Mermaid block as docs/architecture.md holds it: edges sorted, rule names as ids,
    rules without edges on their own lines."""
    nodes, edges = graph
    linked = {n for e in edges for n in e}
    lines = [
        "```mermaid",
        "flowchart LR",
        "    %% union of the rule graphs of config/config.yaml and config/paper.yaml (snakemake",
        "    %% --rulegraph mermaid-js), without `all`; upstream --> downstream, sorted; checked",
        "    %% and printed by tests/test_architecture_doc.py",
        *(f"    {a} --> {b}" for a, b in sorted(edges)),
        *(f"    {n}" for n in sorted(nodes - linked)),
        "```",
    ]
    return "\n".join(lines)


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def doc_graph(text: str) -> Graph:
    """Nodes and edges of the (single) ```mermaid block of the doc."""
    blocks = re.findall(r"^```mermaid\s*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"{DOC.name} should hold exactly one ```mermaid block"
    nodes, edges = set(), set()
    for line in blocks[0].splitlines():
        line = line.split("%%")[0].strip()
        if not line or line.startswith(("flowchart", "graph")):
            continue
        if m := _DOC_EDGE.match(line):
            edges.add((m[1], m[2]))
            nodes |= {m[1], m[2]}
        elif m := _DOC_NODE.match(line):
            nodes.add(m[1])
        else:
            raise AssertionError(f"{DOC.name}: unexpected line in the mermaid block: {line!r}")
    return nodes, edges


def outside_rules(text: str) -> set[str]:
    """Rule names (``- `name` ...`` bullets) under the OUTSIDE_HEADING section of the doc."""
    lines = text.splitlines()
    assert OUTSIDE_HEADING in lines, f"{DOC.name} has no {OUTSIDE_HEADING!r} section"
    names = set()
    for line in lines[lines.index(OUTSIDE_HEADING) + 1 :]:
        if line.startswith("#"):
            break
        if m := re.match(r"^- `([A-Za-z_]\w*)`", line):
            names.add(m[1])
    return names


def workflow_rules() -> set[str]:
    files = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
    return {name for f in files for name in _RULE.findall(f.read_text(encoding="utf-8"))}


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> Graph:
    return union_graph(tmp_path_factory.mktemp("rulegraph"))


def test_diagram_is_the_rule_graph_of_both_configs(expected):
    nodes, edges = doc_graph(doc_text())
    want_nodes, want_edges = expected
    if (nodes, edges) != (want_nodes, want_edges):
        problems = [
            f"{what}: {sorted(items)}"
            for what, items in (
                ("rules missing from the diagram", want_nodes - nodes),
                ("rules in the diagram but not in the graph", nodes - want_nodes),
                ("edges missing", want_edges - edges),
                ("edges not in the graph", edges - want_edges),
            )
            if items
        ]
        raise AssertionError(
            f"the rule graph in {DOC.relative_to(ROOT)} is out of date:\n"
            + "\n".join(problems)
            + "\n\nReplace its ```mermaid block with:\n\n"
            + render(expected)
            + "\n"
        )


def test_every_rule_is_documented():
    text = doc_text()
    nodes, _ = doc_graph(text)
    outside = outside_rules(text)
    rules = workflow_rules()
    assert rules, "no rules found in the Snakefile and rules/*.smk"
    undocumented = rules - nodes - outside
    assert not undocumented, (
        f"rules neither in the diagram of {DOC.name} nor listed under {OUTSIDE_HEADING!r}: "
        f"{sorted(undocumented)} (a rule either config reaches belongs in the diagram: run "
        "tests/test_architecture_doc.py to print it; any other rule gets a bullet there)"
    )
    assert not outside - rules, (
        f"{OUTSIDE_HEADING!r} lists unknown rules: {sorted(outside - rules)}"
    )
    assert not outside & nodes, f"listed as outside yet in the diagram: {sorted(outside & nodes)}"
    assert OMITTED <= outside, f"{OUTSIDE_HEADING!r} should say why {sorted(OMITTED)} is left out"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(render(union_graph(Path(tmp))))
