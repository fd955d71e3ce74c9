"""Text extraction: every supported type, and every malformed input as an ExtractionError."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader, PdfWriter

from myaiserv.extract import (
    SUPPORTED_CONTENT_TYPES,
    Extracted,
    ExtractionError,
    extract,
    normalise_content_type,
    normalise_text,
    page_range,
    paged,
)


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF, written by hand: one Helvetica text object per page, a line
    of it per line of the page's text."""
    count = len(pages)
    page_ids = [3 + 2 * i for i in range(count)]
    font_id = 3 + 2 * count
    info_id = font_id + 1
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: (
            f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {count} >>"
        ).encode(),
        font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, text in zip(page_ids, pages, strict=True):
        # One line of text per line of ``text`` (T* moves down one leading).
        lines = " T* ".join(f"{_pdf_string(line)} Tj" for line in text.split("\n"))
        content = f"BT /F1 12 Tf 14 TL 72 720 Td {lines} ET".encode()
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = (
            f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream"
        )
    if title is not None:
        objects[info_id] = f"<< /Title {_pdf_string(title)} >>".encode()

    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += f"xref\n0 {size}\n".encode() + b"0000000000 65535 f \n"
    for number in range(1, size):
        if number in offsets:
            out += f"{offsets[number]:010d} 00000 n \n".encode()
        else:
            out += b"0000000000 65535 f \n"
    info = f" /Info {info_id} 0 R" if title is not None else ""
    out += f"trailer\n<< /Size {size} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def reason_of(data: bytes, content_type: str | None, filename: str | None = None) -> str:
    with pytest.raises(ExtractionError) as info:
        extract(data, content_type, filename)
    assert str(info.value)  # always a human message
    return info.value.reason


# --- content types ---------------------------------------------------------------------------


def test_supported_types() -> None:
    assert {"text/plain", "text/markdown", "text/html", "application/pdf"} == set(
        SUPPORTED_CONTENT_TYPES
    )


@pytest.mark.parametrize(
    ("content_type", "filename", "expected"),
    [
        ("text/plain", None, "text/plain"),
        ("Text/Plain; charset=UTF-8", None, "text/plain"),
        ("text/x-markdown", None, "text/markdown"),
        ("application/xhtml+xml; charset=utf-8", None, "text/html"),
        ("APPLICATION/PDF", "ignored.txt", "application/pdf"),
        (None, "notes.txt", "text/plain"),
        (None, "notes.TEXT", "text/plain"),
        ("", "README.md", "text/markdown"),
        (None, "doc.markdown", "text/markdown"),
        ("application/octet-stream", "page.HTM", "text/html"),
        ("application/octet-stream", "dir/page.html", "text/html"),
        (None, "C:\\uploads\\paper.pdf", "application/pdf"),
    ],
)
def test_normalise_content_type(
    content_type: str | None, filename: str | None, expected: str
) -> None:
    assert normalise_content_type(content_type, filename) == expected


@pytest.mark.parametrize(
    ("content_type", "filename", "named"),
    [
        ("image/png", None, "image/png"),
        ("application/msword", "a.txt", "application/msword"),  # a declared type wins
        (None, None, "missing"),
        ("application/octet-stream", "archive.zip", "archive.zip"),
        (None, "noextension", "noextension"),
    ],
)
def test_unsupported_content_type(
    content_type: str | None, filename: str | None, named: str
) -> None:
    with pytest.raises(ExtractionError) as info:
        normalise_content_type(content_type, filename)
    assert info.value.reason == "unsupported_content_type"
    assert named in str(info.value)
    assert isinstance(info.value, ValueError)
    assert reason_of(b"hello", content_type, filename) == "unsupported_content_type"


# --- plain text and Markdown -------------------------------------------------------------------


def test_plain_text_is_normalised() -> None:
    data = b"  \r\nFirst line   \r\nsecond\t\r\n\r\n\r\n\r\n\rthird\n\n\n"
    result = extract(data, "text/plain")
    assert result == Extracted(
        text="First line\nsecond\n\nthird", title=None, content_type="text/plain"
    )


def test_plain_text_keeps_indentation_and_unicode() -> None:
    result = extract("Zürich — 東京\n    indented".encode(), "text/plain; charset=utf-8")
    assert result.text == "Zürich — 東京\n    indented"


def test_bom_is_removed() -> None:
    result = extract(b"\xef\xbb\xbfHello", "text/plain")
    assert result.text == "Hello"
    assert not result.text.startswith("\ufeff")


def test_markdown_keeps_headings_and_finds_title() -> None:
    data = b"Intro line\n\n# The Title #\n\nBody.\n\n## Section\n\nMore.\n\n# Second h1\n"
    result = extract(data, "text/markdown", "x.md")
    assert result.title == "The Title"
    assert result.content_type == "text/markdown"
    assert result.text == data.decode().strip()


def test_markdown_title_ignores_code_fences_and_hashtags() -> None:
    data = b"#hashtag\n\n```\n# comment in code\n```\n\n## Sub\n\n# Real Title\n"
    assert extract(data, "text/markdown").title == "Real Title"
    assert extract(b"No heading at all.", "text/markdown").title is None


def test_invalid_utf8_reports_offset() -> None:
    with pytest.raises(ExtractionError) as info:
        extract(b"hello \xff world", "text/plain")
    assert info.value.reason == "invalid_utf8"
    assert "offset 6" in str(info.value)


def test_invalid_utf8_offset_counts_the_bom() -> None:
    with pytest.raises(ExtractionError) as info:
        extract(b"\xef\xbb\xbfab\xc3(", "text/markdown")
    assert info.value.reason == "invalid_utf8"
    assert "offset 5" in str(info.value)


def test_nul_byte_is_rejected() -> None:
    with pytest.raises(ExtractionError) as info:
        extract(b"abc\x00def", "text/plain")
    assert info.value.reason == "invalid_text"
    assert "offset 3" in str(info.value)
    assert reason_of("hi".encode("utf-16-le"), "text/markdown") == "invalid_text"


@pytest.mark.parametrize("content_type", ["text/plain", "text/markdown", "text/html"])
@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n  ", b"\xef\xbb\xbf\n"])
def test_empty_text_is_rejected(content_type: str, data: bytes) -> None:
    assert reason_of(data, content_type) == "empty"


# --- HTML ------------------------------------------------------------------------------------

PAGE = b"""<!DOCTYPE html>
<html><head><title>  The   Page </title>
<style>body { color: red }</style><script>var secret = "x";</script></head>
<body>
<!-- a comment -->
<noscript>Enable JavaScript</noscript><template><p>template text</p></template>
<h1>Main <b>heading</b></h1>
<p>First   paragraph
   spans lines.</p>
<div>Block text<br>after a break<p>nested paragraph</p>tail text</div>
<h2>Sub heading</h2>
<ul><li>item one</li><li>item <a href="#">two</a></li></ul>
<h3>Third</h3><table><tr><th>Name</th><td>Value</td></tr></table>
<pre>def f():
    # a comment
    return 1</pre>
<p># not a heading</p>
<script>alert(1)</script>
</body></html>"""


def test_html_to_markdown_like_text() -> None:
    result = extract(PAGE, "text/html; charset=utf-8")
    assert result.content_type == "text/html"
    assert result.title == "The Page"
    assert result.text == (
        "# Main heading\n\n"
        "First paragraph spans lines.\n\n"
        "Block text\nafter a break\n\n"
        "nested paragraph\n\n"
        "tail text\n\n"
        "## Sub heading\n\n"
        "item one\n\n"
        "item two\n\n"
        "### Third\n\n"
        "Name Value\n\n"
        "```\ndef f():\n    # a comment\n    return 1\n```\n\n"
        "\\# not a heading"
    )
    for dropped in ("secret", "alert", "color", "Enable JavaScript", "template text", "comment -"):
        assert dropped not in result.text


def test_html_title_falls_back_to_first_h1() -> None:
    result = extract(b"<body><h2>Two</h2><h1> One  h1 </h1><h1>Other</h1></body>", "text/html")
    assert result.title == "One h1"
    assert extract(b"<p>No title</p>", "text/html").title is None


def test_html_heading_levels() -> None:
    html = "".join(f"<h{n}>Level {n}</h{n}>" for n in range(1, 7)).encode()
    lines = extract(html, "text/html").text.split("\n\n")
    assert lines == [f"{'#' * n} Level {n}" for n in range(1, 7)]


def test_html_charsets() -> None:
    latin = "<p>café</p>".encode("latin-1")
    assert extract(latin, "text/html; charset=ISO-8859-1").text == "café"
    meta = b'<html><head><meta charset="windows-1252"></head><body><p>\x93hi\x94</p></body></html>'
    assert extract(meta, "text/html").text == "\u201chi\u201d"
    http_equiv = (
        b'<meta http-equiv="Content-Type" content="text/html; charset=latin-1"><p>na\xefve</p>'
    )
    assert extract(http_equiv, "text/html").text == "naïve"
    assert extract("<p>ünïcode</p>".encode(), "text/html").text == "ünïcode"
    assert extract(b"\xef\xbb\xbf<p>bom</p>", "text/html").text == "bom"


def test_html_invalid_encoding() -> None:
    assert reason_of(b"<p>caf\xe9</p>", "text/html") == "invalid_encoding"
    assert reason_of(b"<p>x</p>", "text/html; charset=no-such-charset") == "invalid_encoding"
    assert reason_of(b"<p>\xff</p>", "text/html; charset=utf-8") == "invalid_encoding"


def test_html_without_text_is_empty() -> None:
    assert reason_of(b"<html><head><title>T</title></head><body></body></html>", "text/html") == (
        "empty"
    )
    assert reason_of(b"<script>only()</script>", "text/html") == "empty"


def test_deeply_nested_html() -> None:
    html = ("<div>" * 5000 + "<p>deep</p>" + "</div>" * 5000).encode()
    assert extract(html, "text/html").text == "deep"


def test_malformed_html_is_tolerated() -> None:
    result = extract(b"<p>unclosed <b>bold<p>next</div></span>&amp; &bogus; <", "text/html")
    assert "unclosed bold" in result.text
    assert "next&" in result.text


# --- PDF -------------------------------------------------------------------------------------


def test_pdf_text_and_title() -> None:
    data = make_pdf(["Hello from a tiny PDF (really)."], title="Tiny  PDF")
    assert PdfReader(io.BytesIO(data)).pages  # the hand-written file is valid
    result = extract(data, "application/pdf", "tiny.pdf")
    assert result.content_type == "application/pdf"
    assert result.text == "Hello from a tiny PDF (really)."
    assert result.title == "Tiny PDF"


def test_pdf_pages_are_joined_with_blank_lines() -> None:
    result = extract(make_pdf(["Page one.", "Page two."]), None, "two.pdf")
    assert result.text == "Page one.\n\nPage two."
    assert result.title is None
    assert result.page_starts == (0, 11)


def test_each_pages_text_begins_where_page_starts_says() -> None:
    pages = ["First page,\nsecond line.", "", "Third page.", "Fourth   page.  "]
    result = extract(make_pdf(pages), None, "four.pdf")
    starts = result.page_starts
    assert starts is not None and len(starts) == 4
    assert result.text[starts[0] :].startswith("First page,\nsecond line.")
    assert starts[1] == starts[2]  # the page without text begins where the next does
    assert result.text[starts[2] : starts[3]].strip() == "Third page."
    assert result.text[starts[3] :] == "Fourth   page."  # trailing spaces go
    assert result.text == normalise_text(result.text)
    # A span's pages: the first and last it touches.
    assert page_range(starts, 0, 5) == (1, 1)
    assert page_range(starts, 5, starts[2] + 3) == (1, 3)
    assert page_range(starts, starts[3], len(result.text)) == (4, 4)
    assert page_range(starts, starts[2], starts[3]) == (3, 3)  # ends at the next page


def test_paged_keeps_offsets_exact() -> None:
    text, starts = paged(["  a  \n\n\n\nb ", "", "c"])
    assert text == "a\n\nb\n\nc"
    assert starts == (0, 6, 6)
    assert paged(["", ""]) == ("", (0, 0))


def test_pdf_leading_whitespace_is_accepted() -> None:
    assert extract(b"\r\n " + make_pdf(["Spaced."]), "application/pdf").text == "Spaced."


def test_not_a_pdf() -> None:
    with pytest.raises(ExtractionError) as info:
        extract(b"<html>surprise</html>", "application/pdf")
    assert info.value.reason == "invalid_pdf"
    assert "not a PDF" in str(info.value)
    assert reason_of(b"", "application/pdf") == "invalid_pdf"


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n",
        b"%PDF-1.4\ngarbage garbage garbage\n%%EOF",
        b"%PDF-\x00\xff\xfe" * 100,
        make_pdf(["Truncated document."])[:60],
        make_pdf(["Truncated document."])[:200],
        make_pdf(["Truncated document."])[:-20],
    ],
)
def test_broken_pdf(data: bytes) -> None:
    assert reason_of(data, "application/pdf") == "invalid_pdf"


def test_pdf_without_text_is_empty() -> None:
    with pytest.raises(ExtractionError) as info:
        extract(make_pdf(["   "]), "application/pdf")
    assert info.value.reason == "empty"


def _encrypt(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, "owner-" + user_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_encrypted_pdf() -> None:
    locked = _encrypt(make_pdf(["Secret text."]), "secret")
    assert reason_of(locked, "application/pdf") == "encrypted_pdf"


def test_encrypted_pdf_with_empty_user_password_is_read() -> None:
    opened = _encrypt(make_pdf(["Readable text."]), "")
    assert extract(opened, "application/pdf").text == "Readable text."
