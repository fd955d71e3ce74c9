"""SMART/CISI-format loader: record parsing, qrels layouts and the real CISI collection."""

from __future__ import annotations

from pathlib import Path

import pytest

from myaiserv.datasets.trec import (
    Collection,
    TrecDocument,
    TrecQuery,
    load_collection,
    parse_qrels,
    parse_records,
)

CISI_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "cisi"

DOCS = """\
.I 1
.T
A Title That
Wraps Over Two Lines
.A
Smith, J.
.A
Doe, A.
Roe, R.
.W
   First paragraph line one
line two.
  Second paragraph starts indented
and continues.

Third after a blank line.
.X
1\t5\t1
92\t1\t1
.I 2
.T Same-line title
.W Body on the marker line
and a second line.
.B
1970
.I 3
.W
.Kilobyte is body text, not a marker.
"""


def write_collection(root: Path, files: dict[str, str], name: str = "TOY") -> Path:
    folder = root / name
    folder.mkdir()
    for filename, content in files.items():
        (folder / filename).write_bytes(content.encode())
    return folder


# --- parse_records ----------------------------------------------------------------------


def test_parse_records_fields_and_same_line_text() -> None:
    records = list(parse_records(DOCS))

    assert [r["I"] for r in records] == [["1"], ["2"], ["3"]]
    assert records[0]["T"] == ["A Title That", "Wraps Over Two Lines"]
    # Repeated markers append to one field.
    assert records[0]["A"] == ["Smith, J.", "Doe, A.", "Roe, R."]
    assert records[1]["T"] == ["Same-line title"]
    assert records[1]["W"] == ["Body on the marker line", "and a second line."]
    assert records[2]["W"] == [".Kilobyte is body text, not a marker."]


def test_parse_records_crlf_and_trailing_whitespace() -> None:
    text = ".I 7  \r\n.T \r\nTitle  \r\n.W\t\r\n  body  \r\n"
    assert list(parse_records(text)) == [{"I": ["7"], "T": ["Title"], "W": ["  body"]}]


def test_parse_records_rejects_text_before_first_record() -> None:
    with pytest.raises(ValueError, match="before the first"):
        list(parse_records("stray\n.I 1\n.W\nx\n"))


def test_parse_records_rejects_missing_id() -> None:
    with pytest.raises(ValueError, match=r"\.I <id>"):
        list(parse_records(".I\n.W\nx\n"))


# --- parse_qrels ------------------------------------------------------------------------


def test_qrels_cisi_layout_is_binary() -> None:
    text = "     1     28\t0\t0.000000\n     1     35\t0\t0.000000\n     2  7\t0\t0.000000\n"
    assert parse_qrels(text) == {"1": {"28": 1, "35": 1}, "2": {"7": 1}}


def test_qrels_four_integer_columns_not_trec_when_second_column_varies() -> None:
    # SMART rows with an integer 4th column ("01 1410 0 0", as CACM writes them).
    assert parse_qrels("01 1410 0 0\n01 1572 0 0\n") == {"01": {"1410": 1, "1572": 1}}


def test_qrels_trec_layout_is_graded() -> None:
    text = "1 0 13 1\n1 0 14 2\n1 0 15 0\n2 0 13 1\n"
    qrels = parse_qrels(text)

    assert qrels == {"1": {"13": 1, "14": 2, "15": 0}, "2": {"13": 1}}


def test_qrels_one_odd_row_does_not_flip_the_layout() -> None:
    # Alone, "1 0 0 0" reads as TREC; the layout is decided per file, so it stays SMART here.
    assert parse_qrels("1 0 0 0\n1 5 0 0\n") == {"1": {"0": 1, "5": 1}}
    # CISI's float 4th column is never TREC, even with a doc id of 0.
    assert parse_qrels("1 0 0 0.0\n") == {"1": {"0": 1}}


def test_qrels_three_and_two_columns() -> None:
    assert parse_qrels("1 10 2\n1 11 0\n") == {"1": {"10": 2, "11": 0}}
    assert parse_qrels("1 10\r\n\r\n# comment\r\n2 11\r\n") == {"1": {"10": 1}, "2": {"11": 1}}


def test_qrels_duplicate_pair_keeps_highest_grade() -> None:
    assert parse_qrels("1 10 1\n1 10 3\n1 10 2\n") == {"1": {"10": 3}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3\n1 2\n", "mixed column counts"),
        ("1 2 3 4 5\n", "2, 3 or 4 columns"),
        ("1 2 high\n", "not an integer"),
    ],
)
def test_qrels_rejects_malformed(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_qrels(text)


def test_qrels_empty() -> None:
    assert parse_qrels("\n  \n") == {}


# --- load_collection --------------------------------------------------------------------


def test_load_documents_fields(tmp_path: Path) -> None:
    folder = write_collection(tmp_path, {"toy.all": DOCS.replace("\n", "\r\n")})

    c = load_collection(folder)

    assert c.name == "toy"
    assert c.queries == []
    assert c.qrels == {}
    assert c.judged_queries() == []
    d1, d2, d3 = c.documents
    assert d1 == TrecDocument(
        id="1",
        title="A Title That Wraps Over Two Lines",
        authors=["Smith, J.", "Doe, A.", "Roe, R."],
        text=(
            "First paragraph line one line two.\n\n"
            "Second paragraph starts indented and continues.\n\n"
            "Third after a blank line."
        ),
        extra={"X": "1\t5\t1\n92\t1\t1"},
    )
    assert d2.title == "Same-line title"
    assert d2.authors == []
    assert d2.text == "Body on the marker line and a second line."
    assert d2.extra == {"B": "1970"}
    # Missing fields become empty values, not errors.
    assert (d3.title, d3.authors, d3.extra) == ("", [], {})
    assert d3.text == ".Kilobyte is body text, not a marker."


def test_load_queries_and_judged(tmp_path: Path) -> None:
    queries = (
        ".I 10\n.W\nten\n.I 2\n.T\nTwo title\n.A\nX, Y.\n.W\ntwo body\nmore\n.I 3\n.W\nthree\n"
    )
    rel = "10 1 0 0.0\n2 2 0 0.0\n2 1 0 0.0\n"
    folder = write_collection(
        tmp_path, {"TOY.ALL": DOCS, "Toy.Qry": queries, "toy.REL": rel}, name="MiXed"
    )

    c = load_collection(str(folder))

    assert c.name == "mixed"
    assert c.queries == [
        TrecQuery(id="10", text="ten"),
        TrecQuery(id="2", text="Two title\n\ntwo body more"),
        TrecQuery(id="3", text="three"),
    ]
    assert c.qrels == {"10": {"1": 1}, "2": {"2": 1, "1": 1}}
    # Only queries with a relevant document, in numeric id order.
    assert [q.id for q in c.judged_queries()] == ["2", "10"]


def test_judged_queries_ignore_non_relevant_grades() -> None:
    c = Collection(
        name="x",
        documents=[],
        queries=[TrecQuery("1", "a"), TrecQuery("2", "b")],
        qrels={"1": {"d": 0}, "2": {"d": 1, "e": 0}},
    )
    assert [q.id for q in c.judged_queries()] == ["2"]


def test_load_rejects_unknown_judged_doc(tmp_path: Path) -> None:
    folder = write_collection(
        tmp_path, {"t.all": DOCS, "t.qry": ".I 1\n.W\nq\n", "t.rel": "1 99 0 0.0\n"}
    )
    with pytest.raises(ValueError, match="judged doc ids not in"):
        load_collection(folder)


def test_load_rejects_duplicate_doc_ids(tmp_path: Path) -> None:
    folder = write_collection(tmp_path, {"t.all": ".I 1\n.W\na\n.I 1\n.W\nb\n"})
    with pytest.raises(ValueError, match="duplicate record ids"):
        load_collection(folder)


def test_load_requires_exactly_one_documents_file(tmp_path: Path) -> None:
    empty = write_collection(tmp_path, {"t.qry": ".I 1\n.W\nq\n"}, name="a")
    with pytest.raises(FileNotFoundError, match=r"\*\.ALL"):
        load_collection(empty)

    two = write_collection(tmp_path, {"a.all": DOCS, "b.ALL": DOCS}, name="b")
    with pytest.raises(ValueError, match="more than one"):
        load_collection(two)

    two_rel = write_collection(tmp_path, {"a.all": DOCS, "a.rel": "", "b.rel": ""}, name="c")
    with pytest.raises(ValueError, match="more than one"):
        load_collection(two_rel)


def test_load_requires_a_folder(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        load_collection(tmp_path / "missing")


# --- the real CISI collection -----------------------------------------------------------


def test_real_cisi_collection() -> None:
    if not CISI_DIR.is_dir():
        pytest.fail(f"CISI collection not found at {CISI_DIR} (expected shared/data/cisi)")

    c = load_collection(CISI_DIR)

    assert c.name == "cisi"
    assert len(c.documents) == 1460
    assert len({d.id for d in c.documents}) == 1460
    assert len(c.queries) == 112
    judged = c.judged_queries()
    assert len(judged) == 76
    doc_ids = {d.id for d in c.documents}
    assert all(doc in doc_ids for docs in c.qrels.values() for doc in docs)
    first = c.documents[0]
    assert first.id == "1"
    assert first.title.startswith("18 Editions of the Dewey Decimal Classifications")
    assert first.authors == ["Comaromi, J.P."]
    assert first.text.startswith("The present study is a history of the DEWEY Decimal")
    assert all(q.text for q in c.queries)
