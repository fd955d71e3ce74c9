"""HTML to Markdown-like text, so one chunker handles HTML and Markdown alike."""

from __future__ import annotations

import codecs
import re

from bs4 import BeautifulSoup, Tag
from bs4.element import (
    CData,
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    ProcessingInstruction,
)

from myaiserv.extract._errors import ExtractionError

# Elements whose content is never document text.
_DROP = frozenset(
    {"script", "style", "noscript", "template", "head", "svg", "iframe", "object", "embed"}
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
# Elements that end the running paragraph before and after themselves.
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
        "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
        "header", "hgroup", "hr", "html", "li", "main", "menu", "nav", "ol", "p", "section",
        "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
# Marks a <br> in the running paragraph; NULs are removed from the markup, so it is unambiguous.
_BR = "\x00"
_NON_TEXT = (Comment, CData, Declaration, Doctype, ProcessingInstruction)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def decode_html(data: bytes, charset: str | None) -> str:
    """Decode by BOM, then the declared charset, then ``<meta charset>``, then UTF-8 (strict:
    a wrong declaration should surface as a 4xx, not as mojibake in the index)."""
    source = "byte order mark"
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            charset = encoding
            break
    else:
        if charset:
            source = "content type"
        else:
            match = _META_CHARSET.search(data[:4096])
            if match:
                charset, source = match.group(1).decode("ascii"), "<meta charset>"
            else:
                charset, source = "utf-8", "default"
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        raise ExtractionError(
            "invalid_encoding", f"Unknown character encoding {charset!r} (from {source})."
        ) from None
    name = "utf-8-sig" if codec.name == "utf-8" else codec.name
    try:
        return data.decode(name)
    except UnicodeDecodeError as exc:
        raise ExtractionError(
            "invalid_encoding",
            f"HTML content is not valid {charset} (from {source}): "
            f"invalid byte at offset {exc.start}.",
        ) from None


def _block_text(parts: list[str]) -> str:
    """One paragraph: whitespace collapsed, but ``<br>`` line breaks kept."""
    lines = (_collapse(line) for line in "".join(parts).split(_BR))
    text = "\n".join(line for line in lines if line)
    # A paragraph that happens to start with '#' must not turn into a heading downstream.
    return "\\" + text if text.startswith("#") else text


def html_to_text(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Return (Markdown-like text, title). Walks the tree iteratively: deep nesting is legal
    HTML and must not hit the recursion limit."""
    markup = decode_html(data, charset).replace("\x00", "")
    try:
        soup = BeautifulSoup(markup, "html.parser")
    except Exception as exc:  # noqa: BLE001 - html.parser is lenient; anything raised here is malformed input
        raise ExtractionError("invalid_html", f"HTML content could not be parsed: {exc}") from None

    title: str | None = None
    if soup.title is not None:
        title = _collapse(soup.title.get_text()) or None
    if title is None:
        h1 = soup.find("h1")
        if isinstance(h1, Tag):
            title = _collapse(h1.get_text()) or None

    blocks: list[str] = []
    parts: list[str] = []

    def flush() -> None:
        text = _block_text(parts)
        parts.clear()
        if text:
            blocks.append(text)

    stack: list[tuple[object, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            flush()
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, _NON_TEXT):
                parts.append(str(node))
            continue
        if not isinstance(node, Tag):
            continue
        name = (node.name or "").lower()
        if name in _DROP:
            continue
        if name in _HEADINGS:
            flush()
            text = _collapse(node.get_text())
            if text:
                blocks.append("#" * _HEADINGS[name] + " " + text)
            continue
        if name == "br":
            parts.append(_BR)
            continue
        if name == "pre":
            flush()
            code = node.get_text().strip("\n").rstrip()
            if code.strip():
                blocks.append(f"```\n{code}\n```")
            continue
        if name in _BLOCKS:
            flush()
            stack.append((node, True))
        elif name in {"td", "th"}:
            parts.append(" ")
        stack.extend((child, False) for child in reversed(node.contents))
    flush()
    return "\n\n".join(blocks), title
