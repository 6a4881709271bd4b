"""Report Table 7: rows per training set used in the run, next to the paper's count."""

from hrsa.data.contrastive import REGISTRY, TABLE7_TOTAL
from hrsa.report import examples, readme, tables


def test_table7_uses_rows_after_mining_next_to_the_paper():
    data, mining = examples.training_data_reports(scale=0.01)
    table = tables.table7(data, mining)
    frame = table.frame.set_index("key")
    assert list(frame.index) == list(REGISTRY)
    assert frame["n_paper"].sum() == TABLE7_TOTAL
    for key, row in frame.iterrows():
        assert row["used"] == mining["sources"][key]["written"]
        assert row["sampled"] == data["sets"][key]["used"]
        assert row["used_minus_paper"] == row["used"] - REGISTRY[key].n_paper
        assert row["negatives"] == ("annotated" if REGISTRY[key].annotated_negatives else "mined")
        assert row["verified"] == REGISTRY[key].verified
        assert row["mined_negatives"] == mining["sources"][key]["mined_negatives"]
    lines = table.markdown.splitlines()
    assert lines[0] == "| Dataset | Table 7 | Used | Δ | Negatives | Mined negatives | Source |"
    assert lines[2].startswith("| FEVER | 105,893 | 1,0")
    assert "(unverified)" in lines[2] and "(unverified)" not in lines[3]
    total = next(line for line in lines if line.startswith("| **Total**"))
    assert "1,603,172" in total
    assert "Unverified sources" in table.markdown and "DUReader" in table.markdown
    assert table.title.startswith("Table 7")


def test_table7_without_mining_uses_the_sampled_rows(tmp_path):
    data, _ = examples.training_data_reports(scale=0.001)
    data["sets"]["squad"]["used"] = 10  # a recorded shortfall
    table = tables.table7(data)
    frame = table.frame.set_index("key")
    assert frame.loc["squad", "used"] == 10
    assert (
        frame.loc["nli", "negatives"] == "annotated" and frame.loc["squad", "negatives"] == "none"
    )
    assert "Shortfall" in table.markdown and "SQuAD" in table.markdown
    table.write(tmp_path / "table7.csv", tmp_path / "table7.md")
    assert (tmp_path / "table7.md").read_text().startswith("# Table 7")
    assert (tmp_path / "table7.csv").read_text().splitlines()[0].startswith("key,dataset,n_paper")


def test_readme_lists_table7():
    entry = readme.describe("table7", {})
    assert entry.reproduces == "Table 7" and "Table 7 count" in entry.description
