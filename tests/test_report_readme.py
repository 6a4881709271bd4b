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


MODELS = {
    "a": {"label": "Model A", "embedding_source": {"source": "hub/a-emb", "revision": "0123abc"}},
    "b": {"embedding_source": {"source": "/local/b-emb", "revision": None}},
    "c": {"label": "Unused", "embedding_source": {"source": "hub/c-emb"}},  # in no pair
    "d": {"label": "Trained"},
}


def test_published_checkpoints_of_pair_members_in_config_order():
    found = readme.published_checkpoints(PAIRS, MODELS)
    assert found == [
        readme.PublishedCheckpoint("a", "Model A", "hub/a-emb", "0123abc"),
        readme.PublishedCheckpoint("b", "b", "/local/b-emb", None),
    ]
    assert readme.published_checkpoints(PAIRS, {"a": {}, "b": {"label": "B"}}) == []
    assert readme.published_checkpoints(PAIRS, None) == []


def test_readme_lists_published_checkpoints_with_revision_pins(tmp_path):
    text = readme.readme_text([tmp_path / "table3.md"], tmp_path, PAIRS, models=MODELS)
    section = text[text.index("\n## Published checkpoints\n") :]
    assert section.splitlines()[1:] == [
        "## Published checkpoints",
        "",
        "These models' embedding models (stage `emb`, Table 1) are published checkpoints, not "
        "trained by this run (no training-dynamics snapshots for their pairs):",
        "",
        "- Model A (`a`): `hub/a-emb` @ 0123abc",
        "- b (`b`): `/local/b-emb`",
    ]
    assert text.endswith("`/local/b-emb`\n") and "hub/c-emb" not in text
    # the rest of the README is unchanged
    plain = readme.readme_text([tmp_path / "table3.md"], tmp_path, PAIRS)
    assert text.startswith(plain) and plain.endswith("the layer-0 value.\n")


def test_readme_adds_nothing_when_nothing_is_published(tmp_path):
    files = [tmp_path / "table3.md"]
    plain = readme.readme_text(files, tmp_path, PAIRS)
    models = {"a": {"label": "Model A"}, "c": MODELS["c"]}  # published, but in no pair
    assert readme.readme_text(files, tmp_path, PAIRS, models=models) == plain
    assert "Published checkpoints" not in plain


def test_write_readme_writes_verdicts_and_published_in_one_go(tmp_path):
    (tmp_path / "table2.md").write_text(
        "# Table 2: HRSA verdicts per pair\n\n| Model pair | x |\n| :--- | :--- |\n",
        encoding="utf-8",
    )
    files = [tmp_path / "table2.md", tmp_path / "figure3.png"]
    readme.write_readme(tmp_path / "README.md", files=files, pairs=PAIRS, models=MODELS)
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert text == readme.readme_text(
        files,
        tmp_path,
        PAIRS,
        verdicts_markdown=(tmp_path / "table2.md").read_text(encoding="utf-8"),
        models=MODELS,
    )
    assert "## Verdicts (Table 2)\n\n| Model pair | x |" in text
    assert "- Model A (`a`): `hub/a-emb` @ 0123abc" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "table2.md"]
