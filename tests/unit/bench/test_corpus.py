"""The scale benchmark's corpus: pages cleaned to their text, queries made from held-out
documents, documents chosen to a chunk count and cut into portions at the measuring
points."""

from __future__ import annotations

import pytest

from bench.corpus import (
    Doc,
    boundaries,
    clean_html,
    hold_out,
    is_alias,
    measuring_points,
    order_key,
    query_of,
    select,
    split,
)


def doc(path: str, chunks: int, query: str | None = None) -> Doc:
    return Doc(path, path.split("/", 1)[0], chunks, chunks * 200, query)


def test_a_manual_page_that_only_includes_another_is_an_alias() -> None:
    assert is_alias(b'.\\" a comment\n.so man3/printf.3\n')
    assert not is_alias(b".TH LS 1\n.SH NAME\nls \\- list directory contents\n.SH SYNOPSIS\n")


def test_a_page_keeps_its_title_and_main_text_only() -> None:
    sphinx = b"""<html><head><title>PCI howto &mdash; The Linux Kernel documentation</title></head>
    <body><nav class="wy-nav-side"><ul><li>Every page of the manual</li></ul></nav>
    <div role="main"><h1>PCI howto<a class="headerlink" href="#x">\xc2\xb6</a></h1>
    <p>Drivers probe devices.</p></div></body></html>"""
    cleaned = clean_html(sphinx).decode()
    assert "<title>PCI howto \u2014 The Linux Kernel documentation</title>" in cleaned
    assert "Drivers probe devices." in cleaned
    assert "Every page of the manual" not in cleaned and "\u00b6" not in cleaned

    sqlite = b"""<html><head><title>SELECT</title></head><body>
    <div class=nosearch><div class="menu mainmenu">Home About Download</div></div>
    <div class=fancy><h1>Overview</h1><p>The SELECT statement queries.</p></div></body></html>"""
    cleaned = clean_html(sqlite).decode()
    assert "The SELECT statement queries." in cleaned and "Download" not in cleaned

    docbook = b"""<html><head><title>SELECT</title></head><body>
    <div class="navheader">Prev Up Next</div><p>Retrieve rows.</p>
    <div class="navfooter">Prev Home Next</div></body></html>"""
    cleaned = clean_html(docbook).decode()
    assert "Retrieve rows." in cleaned and "Prev" not in cleaned

    man = b"""<html><head><title>LS(1)</title></head><body>
    <table class="head"><tr><td>LS(1)</td><td>User Commands</td></tr></table>
    <section class="Sh"><h1 class="Sh">NAME</h1>ls - list directory contents</section>
    <table class="foot"><tr><td>GNU coreutils</td></tr></table></body></html>"""
    cleaned = clean_html(man).decode()
    assert "list directory contents" in cleaned
    assert "User Commands" not in cleaned and "GNU coreutils" not in cleaned


LINUX = " \u2014 The Linux Kernel documentation"
QUERIES = [
    ("man", "LS(1)", "# NAME\n\nls - list directory contents\n\n# SYNOPSIS",
     "list directory contents"),
    ("man", "GIT-ADD(1)", "# NAME\n\ngit-add \u2014 Add file contents to the index.",
     "Add file contents to the index"),
    ("man", "X(3)", "# NAME\n\nx\n\n# DESCRIPTION", None),
    ("html", f"PCI Express I/O Virtualization Howto{LINUX}", "",
     "PCI Express I/O Virtualization Howto"),
    ("html", "9.4. String Functions and Operators", "", "String Functions and Operators"),
    ("html", "os \u2014 Miscellaneous operating system interfaces", "",
     "os \u2014 Miscellaneous operating system interfaces"),
    ("html", "Introduction", "", None),
    ("html", None, "", None),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "title", "text", "query"), QUERIES)
def test_queries_are_a_manual_pages_description_or_a_pages_title(
    kind: str, title: str | None, text: str, query: str | None
) -> None:
    assert query_of(kind, title, text) == query


def test_held_out_documents_give_the_queries_and_leave_the_corpus() -> None:
    docs = [doc(f"pkg/{i}.html", 10, f"query {i % 3}" if i % 2 else None) for i in range(40)]
    queries, rest = hold_out(docs, 2)
    assert len(queries) == 2 and len({q.lower() for q in queries}) == 2
    held = [d for d in docs if d not in rest]
    assert len(held) == 2 and all(d.query in queries for d in held)
    assert [d.path for d in rest] == sorted((d.path for d in rest), key=order_key)


def test_documents_are_chosen_in_order_until_the_chunks_reach_the_size() -> None:
    docs = [doc("a/1", 5), doc("a/2", 0), doc("a/3", 5), doc("a/4", 5)]
    assert [d.path for d in select(docs, 8)] == ["a/1", "a/3"]
    assert [d.path for d in select(docs, 10)] == ["a/1", "a/3"]
    with pytest.raises(ValueError, match="15 chunks, fewer than 16"):
        select(docs, 16)


def test_portions_end_at_the_measuring_points_and_every_step_between() -> None:
    assert boundaries(150_000, (2_000, 20_000), 25_000) == [
        2_000, 20_000, 45_000, 70_000, 95_000, 120_000, 145_000, 150_000,
    ]  # fmt: skip
    assert boundaries(3_000, (500, 1_500, 9_000), 1_000) == [500, 1_500, 2_500, 3_000]


def test_a_document_past_two_boundaries_closes_one_portion() -> None:
    docs = [doc("a/1", 3), doc("a/2", 10), doc("a/3", 2), doc("a/4", 6)]
    portions = split(docs, [2, 5, 12, 20])
    assert [[d.path for d in p] for p in portions] == [["a/1"], ["a/2"], ["a/3", "a/4"]]
    assert measuring_points(portions, (2, 12), 20) == {0: 2, 1: 12, 2: 20}
