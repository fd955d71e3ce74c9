"""Token-aware chunking with overlap that respects headings, paragraphs and sentences.

Chunks are what gets embedded and retrieved, so they must fit the embedding model's window
(``max_tokens``, counted with the model's own tokenizer), carry their heading context, and
keep offsets into the source text for citations. Deterministic, so re-indexing a document
yields the same chunk ids.

It stays one module past 400 lines on purpose: sections, paragraphs, sentences, packing,
heading prefixes and repair are the steps of one algorithm, sharing its private span types
and the invariants above (offsets, the token budget, determinism).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Chunk", "TokenCounter", "chunk_text"]


class TokenCounter(Protocol):
    """Counts tokens of many texts at once (no special tokens); batched because it is a
    tokenizer call."""

    def __call__(self, texts: list[str]) -> list[int]: ...


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of a document."""

    id: str
    document_id: str
    position: int
    text: str
    heading: str | None
    token_count: int
    char_start: int
    char_end: int


_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]\u201d\u2019]*\s+")
_LINE_BREAK = re.compile(r"\n[ \t]*")
_LIST_ITEM = re.compile(r"[-*+>]\s|\||\d{1,9}[.)]\s")
_LAST_WORD = re.compile(r"(\S+)$")
_WORD = re.compile(r"\S+")
_OPENERS = "\"'(\u201c\u2018["
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "cf", "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "no"}
)
_TITLE_SEPARATOR = " \u2014 "
_PATH_SEPARATOR = " > "


@dataclass(frozen=True)
class _Span:
    start: int
    end: int


@dataclass
class _Unit:
    """The smallest piece packed into a chunk: a sentence, or part of a too-long one."""

    start: int
    end: int
    tokens: int


@dataclass
class _Section:
    path: str | None  # the heading path reported on the chunk
    context: str | None  # the heading path put in the text prefix
    start: int
    end: int
    # A heading with no body and no subsections: the heading text itself is the body.
    heading_only: bool = False


@dataclass
class _Draft:
    section: int
    units: list[_Unit]
    overlap: int  # how many leading units repeat the previous chunk
    text: str = ""
    tokens: int | None = None


def _count(count_tokens: TokenCounter, texts: Sequence[str]) -> list[int]:
    if not texts:
        return []
    counts = list(count_tokens(list(texts)))
    if len(counts) != len(texts):
        raise ValueError(f"token counter returned {len(counts)} counts for {len(texts)} texts")
    return [int(c) for c in counts]


def _strip(text: str, start: int, end: int) -> _Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return _Span(start, end) if start < end else None


def _lines(text: str, start: int, end: int) -> list[_Span]:
    spans = []
    while start <= end:
        newline = text.find("\n", start, end)
        stop = end if newline < 0 else newline
        spans.append(_Span(start, stop))
        start = stop + 1
    return spans


def _sections(text: str) -> list[_Section]:
    """Split at ATX headings (not inside code fences) and track the heading path."""
    found: list[tuple[int, str, int, int, int]] = []  # level, name, line start/end, text start
    fence: str | None = None
    for line in _lines(text, 0, len(text)):
        content = text[line.start : line.end]
        fence_match = _FENCE.match(content)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
                and not content[fence_match.end() :].strip()
            ):
                fence = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            continue
        heading = _HEADING.match(content)
        if heading:
            name = " ".join((heading.group(2) or "").split())
            name_start = line.start + (heading.start(2) if heading.group(2) else heading.end(1))
            found.append((len(heading.group(1)), name, line.start, line.end, name_start))

    sections: list[_Section] = []
    if not found or found[0][2] > 0:
        sections.append(_Section(None, None, 0, found[0][2] if found else len(text)))
    stack: list[tuple[int, str]] = []
    for index, (level, name, _line_start, line_end, name_start) in enumerate(found):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, name))
        path = _PATH_SEPARATOR.join(n for _, n in stack if n) or None
        end = found[index + 1][2] if index + 1 < len(found) else len(text)
        section = _Section(path, path, line_end, end)
        if _strip(text, line_end, end) is None:
            has_child = index + 1 < len(found) and found[index + 1][0] > level
            if has_child or not name:
                continue
            # A leaf heading with no body: index the heading itself, under its parent path.
            section = _Section(
                path,
                _PATH_SEPARATOR.join(n for _, n in stack[:-1] if n) or None,
                name_start,
                line_end,
                heading_only=True,
            )
        sections.append(section)
    return sections


def _paragraphs(text: str, start: int, end: int) -> list[_Span]:
    """Runs of non-blank lines."""
    spans: list[_Span] = []
    first: _Span | None = None
    last: _Span | None = None
    for line in [*_lines(text, start, end), None]:
        if line is not None and text[line.start : line.end].strip():
            first, last = first or line, line
            continue
        if first is not None and last is not None:
            span = _strip(text, first.start, last.end)
            if span is not None:
                spans.append(span)
        first = last = None
    return spans


def _sentences(text: str, para: _Span) -> list[_Span]:
    """A simple splitter: terminal punctuation followed by whitespace and a capital, digit or
    quote; also line breaks that start a list item or follow a sentence end."""
    cuts: list[tuple[int, int]] = []
    for match in _SENTENCE_END.finditer(text, para.start, para.end):
        following = text[match.end()] if match.end() < para.end else ""
        if not following or not (
            following.isupper() or following.isdigit() or following in _OPENERS
        ):
            continue
        word = _LAST_WORD.search(text, max(para.start, match.start() - 32), match.start())
        stem = word.group(1).lower().lstrip("\"'([").rstrip(".") if word else ""
        if stem in _ABBREVIATIONS or (len(stem) == 1 and stem.isalpha()):
            continue
        cuts.append((match.start() + len(match.group().rstrip()), match.end()))
    for match in _LINE_BREAK.finditer(text, para.start, para.end):
        before = match.start()
        while before > para.start and text[before - 1] in " \t":
            before -= 1
        ends_sentence = text[before - 1] in ".!?:;" if before > para.start else False
        if ends_sentence or _LIST_ITEM.match(text, match.end()):
            cuts.append((match.start(), match.end()))
    spans = []
    position = para.start
    for cut_start, cut_end in sorted(set(cuts)):
        if cut_start < position:
            continue
        span = _strip(text, position, cut_start)
        if span is not None:
            spans.append(span)
        position = cut_end
    span = _strip(text, position, para.end)
    if span is not None:
        spans.append(span)
    return spans


def _split_chars(
    text: str, span: _Span, tokens: int, budget: int, count_tokens: TokenCounter
) -> list[_Unit]:
    """Halve an over-long run of characters until every piece fits (a URL, base64, ...)."""
    done: list[_Unit] = []
    pending = [_Unit(span.start, span.end, tokens)]
    while pending:
        halves: list[_Unit] = []
        for unit in pending:
            if unit.tokens <= budget or unit.end - unit.start <= 1:
                done.append(unit)
            else:
                middle = (unit.start + unit.end) // 2
                halves += [_Unit(unit.start, middle, 0), _Unit(middle, unit.end, 0)]
        counts = _count(count_tokens, [text[u.start : u.end] for u in halves])
        for unit, count in zip(halves, counts, strict=True):
            unit.tokens = count
        pending = halves
    return sorted(done, key=lambda u: u.start)


def _greedy(units: list[_Unit], budget: int) -> list[_Unit]:
    """Merge consecutive units into as few pieces of at most ``budget`` tokens as possible."""
    pieces: list[_Unit] = []
    for unit in units:
        if pieces and pieces[-1].tokens + unit.tokens <= budget:
            pieces[-1] = _Unit(pieces[-1].start, unit.end, pieces[-1].tokens + unit.tokens)
        else:
            pieces.append(_Unit(unit.start, unit.end, unit.tokens))
    return pieces


def _split_long(text: str, sentence: _Unit, budget: int, count_tokens: TokenCounter) -> list[_Unit]:
    """Split a sentence longer than the budget on whitespace into pieces that fit."""
    words = [_Span(m.start(), m.end()) for m in _WORD.finditer(text, sentence.start, sentence.end)]
    counts = _count(count_tokens, [text[w.start : w.end] for w in words])
    atoms: list[_Unit] = []
    for word, count in zip(words, counts, strict=True):
        if count > budget:
            atoms += _split_chars(text, word, count, budget, count_tokens)
        else:
            atoms.append(_Unit(word.start, word.end, count))
    return _greedy(atoms, budget)


def _pack(section: int, paragraphs: list[list[_Unit]], budget: int, overlap: int) -> list[_Draft]:
    """Greedy packing: whole paragraphs when they fit, else sentence by sentence; a new chunk
    starts with the previous chunk's trailing sentences that fit in ``overlap``."""
    drafts: list[_Draft] = []
    current: list[_Unit] = []
    carried = 0
    used = 0

    def start_new(first: int) -> None:
        nonlocal current, carried, used
        if len(current) > carried:
            drafts.append(_Draft(section, current, carried))
        tail: list[_Unit] = []
        size = 0
        # A strict suffix, so a chunk never just repeats the previous one.
        for unit in reversed(current[1:] if overlap else []):
            if size + unit.tokens > overlap or size + unit.tokens + first > budget:
                break
            tail.insert(0, unit)
            size += unit.tokens
        current, carried, used = tail, len(tail), size

    for paragraph in paragraphs:
        size = sum(u.tokens for u in paragraph)
        if used + size <= budget:
            current += paragraph
            used += size
            continue
        if size <= budget:
            start_new(size)
            current += paragraph
            used += size
            continue
        for unit in paragraph:
            if used + unit.tokens > budget:
                start_new(unit.tokens)
            current.append(unit)
            used += unit.tokens
    if len(current) > carried:
        drafts.append(_Draft(section, current, carried))
    return drafts


def _prefix_candidates(title: str | None, section: _Section) -> list[str]:
    """The context prefix, then ever shorter fallbacks: without the title, then without the
    outermost headings (the innermost heading says the most about the chunk)."""
    path = section.path
    if title and path and (path == title or path.startswith(title + _PATH_SEPARATOR)):
        title = None  # the document's title is usually its first heading: say it once
    names = section.context.split(_PATH_SEPARATOR) if section.context else []
    candidates = [_TITLE_SEPARATOR.join(p for p in (title, section.context) if p)] if title else []
    candidates += [_PATH_SEPARATOR.join(names[i:]) for i in range(len(names))]
    return candidates or [""]


def _fit_prefix(
    candidates: list[str], count: int, limit: int, count_tokens: TokenCounter
) -> tuple[str, int]:
    """The first candidate of at most ``limit`` tokens (``count`` is the first one's); if none
    fits, the last one cut to its first words."""
    if count <= limit:
        return candidates[0], count
    rest = candidates[1:]
    for candidate, n in zip(rest, _count(count_tokens, [c + "\n" for c in rest]), strict=True):
        if n <= limit:
            return candidate, n
        count = n
    words = candidates[-1].split()
    while count > limit and words:
        words = words[: min(len(words) - 1, len(words) * limit // max(count, 1))]
        count = _count(count_tokens, [" ".join(words) + "\n"])[0] if words else 0
    return " ".join(words), count


def _render(text: str, prefix: str, units: list[_Unit]) -> str:
    body = text[units[0].start : units[-1].end]
    return f"{prefix}\n{body}" if prefix else body


def _repair(text: str, draft: _Draft) -> list[_Draft]:
    """A chunk over the limit (token counts are not exactly additive): drop its overlap, then
    halve it; each step strictly shrinks it, so this ends."""
    if draft.overlap:
        return [_Draft(draft.section, draft.units[draft.overlap :], 0)]
    if len(draft.units) > 1:
        middle = len(draft.units) // 2
        return [
            _Draft(draft.section, draft.units[:middle], 0),
            _Draft(draft.section, draft.units[middle:], 0),
        ]
    unit = draft.units[0]
    if unit.end - unit.start <= 1:
        return [draft]
    middle = (unit.start + unit.end) // 2
    spaces = [m.start() for m in re.finditer(r"\s+", text[unit.start : unit.end])]
    if spaces:
        middle = unit.start + min(spaces, key=lambda s: abs(unit.start + s - middle))
    halves = [_strip(text, unit.start, middle), _strip(text, middle, unit.end)]
    return [_Draft(draft.section, [_Unit(h.start, h.end, 0)], 0) for h in halves if h]


def chunk_text(
    document_id: str,
    text: str,
    *,
    count_tokens: TokenCounter,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    title: str | None = None,
) -> list[Chunk]:
    """Split ``text`` (Markdown-like, as produced by ``myaiserv.extract``) into chunks of at
    most ``max_tokens`` tokens including the "title — heading path" prefix line.

    Raises ValueError for ``max_tokens < 1`` or ``overlap_tokens`` outside ``[0, max_tokens)``.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("overlap_tokens must be at least 0 and less than max_tokens")
    if not text.strip():
        return []
    title = " ".join(title.split()) if title else None

    sections = _sections(text)
    section_paragraphs: list[list[list[_Span]]] = []
    for section in sections:
        if section.heading_only:
            span = _strip(text, section.start, section.end)
            section_paragraphs.append([[span]] if span else [])
        else:
            section_paragraphs.append(
                [_sentences(text, p) for p in _paragraphs(text, section.start, section.end)]
            )

    # One tokenizer call for every prefix and every sentence.
    candidates = [_prefix_candidates(title, s) for s in sections]
    sentence_spans = [s for paras in section_paragraphs for para in paras for s in para]
    counts = _count(
        count_tokens,
        [c[0] + "\n" for c in candidates if c[0]] + [text[s.start : s.end] for s in sentence_spans],
    )
    given = iter(counts[: len(counts) - len(sentence_spans)])
    prefixes: list[str] = []
    prefix_counts: list[int] = []
    for options in candidates:
        prefix, count = _fit_prefix(
            options, next(given) if options[0] else 0, max_tokens // 2, count_tokens
        )
        prefixes.append(prefix)
        prefix_counts.append(count)
    counts = counts[len(counts) - len(sentence_spans) :]
    sentence_counts = iter(counts)

    drafts: list[_Draft] = []
    for index, paras in enumerate(section_paragraphs):
        budget = max_tokens - prefix_counts[index]
        paragraphs: list[list[_Unit]] = []
        for para in paras:
            units: list[_Unit] = []
            for span in para:
                unit = _Unit(span.start, span.end, next(sentence_counts))
                if unit.tokens > budget:
                    units += _split_long(text, unit, budget, count_tokens)
                else:
                    units.append(unit)
            paragraphs.append(units)
        drafts += _pack(index, paragraphs, budget, overlap_tokens)

    # Verify with real counts of the final texts and repair the (rare) ones over the limit.
    pending = drafts
    while True:
        unchecked = [d for d in pending if d.tokens is None]
        for draft in unchecked:
            draft.text = _render(text, prefixes[draft.section], draft.units)
        for draft, count in zip(
            unchecked, _count(count_tokens, [d.text for d in unchecked]), strict=True
        ):
            draft.tokens = count
        repaired: list[_Draft] = []
        changed = False
        for draft in pending:
            over = draft.tokens is not None and draft.tokens > max_tokens
            fixed = _repair(text, draft) if over else [draft]
            changed |= fixed != [draft]
            repaired += fixed
        pending = repaired
        if not changed:
            break

    chunks = []
    for position, draft in enumerate(pending):
        digest = hashlib.sha256(draft.text.encode("utf-8")).hexdigest()[:16]
        chunks.append(
            Chunk(
                id=f"{document_id}:{position}:{digest}",
                document_id=document_id,
                position=position,
                text=draft.text,
                heading=sections[draft.section].path,
                token_count=draft.tokens or 0,
                char_start=draft.units[0].start,
                char_end=draft.units[-1].end,
            )
        )
    return chunks
