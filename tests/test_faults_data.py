"""Issue 17, items 4-5 (data and metrics): no silent wrong results, and errors that name the file,
line, field, input and row.

- a probe row whose text is null, a number or a list is an error (it was analysed as the strings
  "None", "12345", "['a', 'b']");
- duplicate ids are an error; a generated id never equals an id of the data;
- undecodable bytes in a JSONL are an error naming file and line (not a bare UnicodeDecodeError);
- k-NN overlap warns on all-constant input and names its input (X or Y) and the row;
- metrics on 2-3 rows do not blame the debiased HSIC where it is not used.
"""

import json
import logging

import numpy as np
import pytest

from hrsa.activations import read_texts
from hrsa.data.probe import load_probe_dataset, write_jsonl
from hrsa.data.probe_fixtures import write_probe_mirror
from hrsa.errors import DataError
from hrsa.metrics import dimension_wise_correlation, linear_cka
from hrsa.metrics.geometry import debiased_cka, knn_overlap


def jsonl(path, rows) -> str:
    """Rows (dicts, or raw bytes for a line) as a JSONL file; its path."""
    path.write_bytes(
        b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)
    )
    return str(path)


def local(path) -> dict:
    return {"local": str(path)}


# ------------------------------------------------------------------ text must be a string
@pytest.mark.parametrize(
    ("text", "said"),
    [(None, "null"), (12345, "a number (12345)"), (["a", "b"], "a list (['a', 'b'])")],
)
def test_a_text_that_is_not_a_string_names_file_line_and_field(tmp_path, text, said):
    rows = [{"id": "a", "body": "fine"}, {"id": "b", "body": "fine too"}, {"id": "c", "body": text}]
    path = jsonl(tmp_path / "probe.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_probe_dataset("mine", {**local(path), "text_field": "body"})
    assert str(err.value) == f"{path}:3: field 'body' (the text) is {said}, not a string"


def test_a_parquet_text_that_is_not_a_string_names_the_file_and_row(tmp_path):
    import pandas as pd

    path = tmp_path / "probe.parquet"
    pd.DataFrame({"id": ["a", "b"], "text": ["fine", None]}).to_parquet(path)
    want = rf"^{path}: row 1: field 'text' \(the text\) is missing \(NaN\), not a string"
    with pytest.raises(DataError, match=want):
        load_probe_dataset("mine", local(path))


def test_a_registry_row_whose_text_is_null_names_the_source_and_row(tmp_path):
    files = write_probe_mirror(tmp_path, ag_news_rows=8, mmlu_pro_per_category=1)
    (ag_news,) = files["ag_news"]
    rows = [json.loads(line) for line in ag_news.read_text().splitlines()]
    rows[5]["text"] = None
    jsonl(ag_news, rows)
    with pytest.raises(DataError) as err:
        load_probe_dataset("ag_news", {"registry": "ag_news"}, mirror=tmp_path)
    assert str(err.value) == (
        "probe_datasets.ag_news (fancyzhx/ag_news): row 5: field 'text' (the text) is null, "
        "not a string"
    )


def test_the_extraction_reader_refuses_a_text_that_is_not_a_string(tmp_path):
    path = jsonl(tmp_path / "ds.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "text": None}])
    with pytest.raises(DataError, match=rf"^{path}:2: each record needs a string 'text'"):
        read_texts(path)


# ------------------------------------------------------------------ ids
def test_duplicate_ids_are_an_error_naming_both_lines(tmp_path):
    rows = [{"id": "q1", "text": "one"}, {"id": "q2", "text": "two"}, {"id": "q1", "text": "3"}]
    path = jsonl(tmp_path / "probe.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_probe_dataset("mine", local(path))
    assert str(err.value) == (
        f"{path}:3: id 'q1' repeats the id of {path}:1 (field 'id'); ids must be unique"
    )
    # a numeric id and its string are one id in the output (ids are strings there)
    path = jsonl(tmp_path / "mixed.jsonl", [{"id": 7, "text": "a"}, {"id": "7", "text": "b"}])
    with pytest.raises(DataError, match="id '7' repeats"):
        load_probe_dataset("mine", local(path))


def test_the_extraction_reader_refuses_duplicate_ids(tmp_path):
    path = jsonl(tmp_path / "ds.jsonl", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(DataError, match=rf"^{path}:2: id 'a' repeats the id of line 1"):
        read_texts(path)


def test_generated_ids_never_collide_with_the_datas_ids(tmp_path):
    # row 0 has no id; its old generated id "mine-0" is row 1's real id
    rows = [{"text": "no id"}, {"id": "mine-0", "text": "real"}, {"id": None, "text": "null id"}]
    records = load_probe_dataset("mine", local(jsonl(tmp_path / "p.jsonl", rows)))
    ids = [r["id"] for r in records]
    assert ids == ["mine-generated-0", "mine-0", "mine-generated-2"]
    assert len(set(ids)) == len(ids)
    # written and read back for extraction: unique there too
    write_jsonl(records, tmp_path / "out.jsonl")
    assert [r["id"] for r in read_texts(tmp_path / "out.jsonl")] == ids


def test_valid_data_keeps_its_ids_and_texts(tmp_path):
    rows = [{"text": f"text {i}", "label": i % 2} for i in range(4)] + [{"id": 9, "text": "x"}]
    records = load_probe_dataset("mine", local(jsonl(tmp_path / "p.jsonl", rows)))
    assert [r["id"] for r in records] == ["mine-0", "mine-1", "mine-2", "mine-3", "9"]
    assert [r["text"] for r in records] == [r["text"] for r in rows]
    generated = load_probe_dataset("topics", {"generator": "topic_sentences", "n": 8, "seed": 0})
    assert len({r["id"] for r in generated}) == 8


# ------------------------------------------------------------------ undecodable bytes
def test_undecodable_bytes_name_file_and_line(tmp_path):
    rows = [{"id": "a", "text": "fine"}, b'{"id": "b", "text": "caf\xe9"}']
    path = jsonl(tmp_path / "latin1.jsonl", rows)
    want = rf"^{path}:2: not UTF-8 text \(byte 0xe9 at column 25\)"
    with pytest.raises(DataError, match=want):
        load_probe_dataset("mine", local(path))
    with pytest.raises(DataError, match=want):
        read_texts(path)


def test_a_jsonl_line_that_is_not_an_object_names_file_and_line(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [{"id": "a", "text": "x"}, ["not", "a", "row"]])
    with pytest.raises(DataError, match=rf"^{path}:2: not a JSON object"):
        load_probe_dataset("mine", local(path))


# ------------------------------------------------------------------ k-NN overlap
RNG = np.random.default_rng(0)
RANDOM = RNG.normal(size=(200, 8)).astype(np.float32)
OTHER = RNG.normal(size=(200, 8)).astype(np.float32)


def brute_force_knn_overlap(x, y, k):
    def sets(z):
        z = z.astype(np.float64) / np.linalg.norm(z, axis=1, keepdims=True)
        sim = z @ z.T
        np.fill_diagonal(sim, -np.inf)
        return [set(np.argsort(-row, kind="stable")[:k]) for row in sim]

    return float(np.mean([len(a & b) / len(a | b) for a, b in zip(sets(x), sets(y), strict=True)]))


def test_knn_overlap_on_constant_input_warns_naming_the_input(caplog):
    constant = np.ones((200, 8), dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="hrsa.metrics"):
        value = knn_overlap(constant, RANDOM, k=10)
    assert 0 < value < 0.05  # chance level: the number itself says nothing
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith("X: all 200 rows point in one direction")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hrsa.metrics"):
        knn_overlap(RANDOM, 3 * constant, k=10)
    assert [r.getMessage()[:2] for r in caplog.records] == ["Y:"]


def test_knn_overlap_on_valid_input_is_unchanged_and_silent(caplog):
    with caplog.at_level(logging.WARNING, logger="hrsa.metrics"):
        value = knn_overlap(RANDOM, RANDOM + 0.3 * OTHER, k=10)
    assert not caplog.records
    assert value == pytest.approx(brute_force_knn_overlap(RANDOM, RANDOM + 0.3 * OTHER, 10))


@pytest.mark.parametrize("side", ["X", "Y"])
def test_knn_overlap_errors_name_the_input_and_the_row(side):
    bad = RANDOM.copy()
    bad[5, 3] = np.nan
    args = (bad, OTHER) if side == "X" else (OTHER, bad)
    with pytest.raises(DataError, match=rf"^{side}: row 5 has NaN or Inf"):
        knn_overlap(*args, k=10)
    zero = RANDOM.copy()
    zero[7] = 0
    args = (zero, OTHER) if side == "X" else (OTHER, zero)
    with pytest.raises(DataError, match=rf"^{side}: row 7 is the zero vector"):
        knn_overlap(*args, k=10)
    with pytest.raises(DataError, match=r"^X: k-NN with k = 10 needs more than k rows"):
        knn_overlap(RANDOM[:5], OTHER[:5], k=10)


# ------------------------------------------------------------------ metrics on 2-3 rows
@pytest.mark.parametrize("n", [2, 3])
def test_metrics_on_two_or_three_rows_do_not_blame_the_debiased_hsic(n):
    x, y = RANDOM[:n], OTHER[:n]
    assert linear_cka(x, y) == pytest.approx(_linear_cka(x, y))
    dwc = dimension_wise_correlation(x, y)
    xc, yc = x - x.mean(0), y - y.mean(0)
    want = (xc * yc).sum(0) / np.sqrt((xc**2).sum(0) * (yc**2).sum(0))
    assert dwc.mean == pytest.approx(float(np.mean(want)), abs=1e-6)
    with pytest.raises(DataError, match=rf"debiased CKA needs at least 4 rows \(tokens\), got {n}"):
        debiased_cka(x, y)


def _linear_cka(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc, yc = xc.astype(np.float64), yc.astype(np.float64)
    return np.linalg.norm(xc.T @ yc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
