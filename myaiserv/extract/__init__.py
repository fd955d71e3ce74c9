"""Text extraction for uploaded documents (plain text, Markdown, HTML, PDF).

Every type comes out as normalised, Markdown-like text, so a single chunker handles them all;
every malformed input raises :class:`ExtractionError`, so the API can answer with a 4xx.
"""

from __future__ import annotations

import bisect
import codecs
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from myaiserv.extract._errors import ExtractionError
from myaiserv.extract._html import html_to_text
from myaiserv.extract._pdf import pdf_to_text

__all__ = [
    "SUPPORTED_CONTENT_TYPES",
    "Extracted",
    "ExtractionError",
    "extract",
    "normalise_content_type",
    "normalise_text",
    "page_range",
    "paged",
]

SUPPORTED_CONTENT_TYPES = frozenset({"text/plain", "text/markdown", "text/html", "application/pdf"})

_ALIASES = {
    "text/x-markdown": "text/markdown",
    "application/xhtml+xml": "text/html",
}
_EXTENSIONS = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
_GENERIC = {"", "application/octet-stream"}
_MD_TITLE = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Extracted:
    """The text of one document, ready for chunking. ``page_starts`` (PDF): where each
    page's text begins in ``text``, page 1 first (a page without text begins where the
    next one does)."""

    text: str
    title: str | None
    content_type: str
    page_starts: tuple[int, ...] | None = None


def paged(pages: list[str]) -> tuple[str, tuple[int, ...]]:
    """Pages' texts as one normalised text, blank lines between pages, and where each
    page begins in it. Each page is normalised alone, so joining them keeps the text
    normalised and every offset exact."""
    parts: list[str] = []
    starts: list[int] = []
    waiting = 0  # pages without text so far, which begin where the next text does
    length = 0
    for page in pages:
        text = normalise_text(page)
        if not text:
            waiting += 1
            continue
        if parts:
            length += 2  # the blank line before it
        starts += [length] * (waiting + 1)
        waiting = 0
        parts.append(text)
        length += len(text)
    starts += [length] * waiting
    return "\n\n".join(parts), tuple(starts)


def page_range(page_starts: tuple[int, ...] | list[int], start: int, end: int) -> tuple[int, int]:
    """The first and last page (from 1) that the text span ``[start, end)`` touches."""
    first = bisect.bisect_right(page_starts, start)
    last = bisect.bisect_right(page_starts, max(start, end - 1))
    return max(1, first), max(1, last)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def normalise_content_type(content_type: str | None, filename: str | None = None) -> str:
    """Map a client's content type (or, when it is missing or generic, the file extension) to
    one of SUPPORTED_CONTENT_TYPES; clients send all sorts of spellings."""
    media = _media_type(content_type)
    media = _ALIASES.get(media, media)
    if filename and (media in _GENERIC or media == "text/plain"):
        # "text/plain" is what many clients send for any text file: a Markdown or HTML
        # extension is the better hint.
        by_ext = _EXTENSIONS.get(PurePosixPath(filename.replace("\\", "/")).suffix.lower())
        if by_ext and (media in _GENERIC or by_ext in ("text/markdown", "text/html")):
            media = by_ext
    if media in SUPPORTED_CONTENT_TYPES:
        return media
    supported = ", ".join(sorted(SUPPORTED_CONTENT_TYPES))
    if media in _GENERIC:
        what = "a missing content type" if not media else f"content type {media!r}"
        hint = f" and file name {filename!r}" if filename else ""
        message = f"Cannot tell the document type from {what}{hint}; supported: {supported}."
    else:
        message = f"Unsupported content type {media!r}; supported: {supported}."
    raise ExtractionError("unsupported_content_type", message)


def normalise_text(text: str) -> str:
    """Unify newlines, strip trailing spaces, collapse runs of blank lines, strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _decode_utf8(data: bytes, content_type: str) -> str:
    """Strict UTF-8: a wrong encoding should be reported, not indexed as mojibake."""
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        raise ExtractionError(
            "invalid_utf8",
            f"{content_type} content is not valid UTF-8: "
            f"invalid byte 0x{data[offset]:02x} at offset {offset}.",
        ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ExtractionError(
            "invalid_text",
            f"{content_type} content contains a NUL byte at offset {nul} "
            "(binary file, or UTF-16 text?).",
        )
    return text


def _markdown_title(text: str) -> str | None:
    """The first level-1 ATX heading outside code fences."""
    fence: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        heading = _MD_TITLE.match(line)
        if heading:
            return " ".join(heading.group(1).split()) or None
    return None


def extract(data: bytes, content_type: str | None, filename: str | None = None) -> Extracted:
    """Turn an uploaded document into normalised text plus a title, or raise ExtractionError."""
    media = normalise_content_type(content_type, filename)
    title: str | None
    if media == "application/pdf":
        pages, title = pdf_to_text(data)
        text, starts = paged(pages)
        if not text:
            raise ExtractionError(
                "empty", f"The {media} document contains no extractable text (a scanned PDF?)."
            )
        return Extracted(text=text, title=title, content_type=media, page_starts=starts)
    if media == "text/html":
        raw, title = html_to_text(data, _charset(content_type))
    else:
        raw = _decode_utf8(data, media)
        title = _markdown_title(normalise_text(raw)) if media == "text/markdown" else None
    text = normalise_text(raw)
    if not text:
        raise ExtractionError("empty", f"The {media} document contains no text.")
    return Extracted(text=text, title=title, content_type=media)
