"""hrsa.report.readme: the README links every output with the paper item it reproduces."""

from __future__ import annotations

from hrsa.report import collect, readme

PAIRS = collect.pairs_from_config(
    {"rl": {"base": "a", "reasoning": "b", "family": "RLVR", "label": "A vs B"}}
)
FILES = [
    "table3.md",
    "table3.csv",
    "table12.csv",
    "figure12.png",
    "figure3.pdf",
    "figure3.png",
    "figure5/rl.png",
    "pairs/rl.png",
    "pairs/rl.pdf",
    "notes.txt",  # not a report format: ignored
]


def test_entries_group_formats_and_order(tmp_path):
    found = readme.entries([tmp_path / f for f in FILES], tmp_path, PAIRS)
    assert [e.stem for e in found] == [
        "table3",
        "table12",
        "figure3",
        "figure5/rl",
        "figure12",
        "pairs/rl",
    ]
    first = found[0]
    assert first.files == ["table3.csv", "table3.md"] and first.reproduces == "Table 3"
    assert found[3].reproduces == "Figure 5" and "A-Emb vs B-Emb" in found[3].description
    assert found[5].files == ["pairs/rl.png", "pairs/rl.pdf"]


def test_readme_links_every_output_and_notes_skipped(tmp_path):
    verdicts = "# Table 2: HRSA verdicts per pair\n\n| Model pair | x |\n| :--- | :--- |\n"
    text = readme.readme_text(
        [tmp_path / f for f in FILES],
        tmp_path,
        PAIRS,
        skipped={"Table 1": "no MTEB evaluation."},
        verdicts_markdown=verdicts,
    )
    for name in FILES[:-1]:
        assert f"]({name})" in text
    assert "notes.txt" not in text
    assert "| table3: [CSV](table3.csv) · [Markdown](table3.md) | Table 3 |" in text
    assert "![Figure 3 of this run](figure3.png)" in text
    assert "- **Table 1**: no MTEB evaluation." in text
    assert "## Verdicts (Table 2)\n\n| Model pair | x |" in text
    assert "snakemake --report report.html" in text
    # which k-NN layer mean Table 4 shows, and why the authors' k=5/10 values differ
    assert "Table 4 shows both the 0..L mean (the paper's column)" in text
    assert "first k of a top-50 list" in text and "(layer-0 gap)/(L+1)" in text


def test_write_readme(tmp_path):
    (tmp_path / "figure3.png").write_bytes(b"")
    readme.write_readme(tmp_path / "README.md", files=[tmp_path / "figure3.png"], pairs=PAIRS)
    assert "[PNG](figure3.png)" in (tmp_path / "README.md").read_text()
