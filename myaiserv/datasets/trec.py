"""Loader for test collections in the SMART/Glasgow format (CISI, CACM, MED, CRAN, ...).

A collection is a folder holding ``*.ALL`` (documents), ``*.QRY`` (queries) and ``*.REL``
(relevance judgments). Records start with ``.I <id>``; each field starts with a marker
line ``.X`` (a dot and one capital letter, optionally followed by text on the same line)
and runs until the next marker. Loading these gives evaluation and benchmarks a fixed,
judged corpus instead of ad-hoc samples.

Ids are kept exactly as written (only surrounding whitespace is removed), so judgment
ids must be spelled like the ``.I`` ids they refer to.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Collection",
    "TrecDocument",
    "TrecQuery",
    "load_collection",
    "parse_qrels",
    "parse_records",
]

# A marker line: ".X" alone or ".X text". ".Kilobyte" is body text, not a marker.
_MARKER = re.compile(r"^\.([A-Z])(?:[ \t]+(.*))?$")
_INT = re.compile(r"^[+-]?\d+$")

# Fields with a dedicated attribute; everything else lands in TrecDocument.extra.
_KNOWN_FIELDS = frozenset("ITAW")


@dataclass(frozen=True)
class TrecDocument:
    """One document; ``extra`` keeps fields we don't interpret so nothing is lost."""

    id: str
    title: str
    authors: list[str]
    text: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrecQuery:
    """One query; title and body are merged because both carry the information need."""

    id: str
    text: str


@dataclass
class Collection:
    """Documents, queries and graded judgments of one test collection."""

    name: str
    documents: list[TrecDocument]
    queries: list[TrecQuery]
    qrels: dict[str, dict[str, int]]

    def judged_queries(self) -> list[TrecQuery]:
        """Queries with at least one relevant document: the ones metrics are averaged over."""
        judged = {qid for qid, docs in self.qrels.items() if any(g > 0 for g in docs.values())}
        return sorted((q for q in self.queries if q.id in judged), key=lambda q: _id_key(q.id))


def parse_records(text: str) -> Iterator[dict[str, list[str]]]:
    """Split SMART-format text into records: ``{'I': ['1'], 'T': [lines], ...}``.

    Lines keep their leading whitespace (it marks paragraphs in ``.W``) but lose trailing
    whitespace and ``\\r``. Text after a marker on the same line becomes the field's first
    line; a repeated marker (several ``.A`` blocks) appends to the same field.
    """
    record: dict[str, list[str]] | None = None
    current: list[str] | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        match = _MARKER.match(line)
        if match:
            letter, rest = match.group(1), (match.group(2) or "").strip()
            if letter == "I":
                if not rest or len(rest.split()) != 1:
                    raise ValueError(f"line {lineno}: expected '.I <id>', got {raw!r}")
                if record is not None:
                    yield record
                record = {"I": [rest]}
                current = None
                continue
            if record is None:
                raise ValueError(f"line {lineno}: field .{letter} before the first .I record")
            current = record.setdefault(letter, [])
            if rest:
                current.append(rest)
            continue
        if record is None:
            if line:
                raise ValueError(f"line {lineno}: text before the first .I record: {raw!r}")
            continue
        if current is None:
            if line:
                raise ValueError(
                    f"line {lineno}: text outside any field in record {record['I'][0]}"
                )
            continue
        current.append(line)
    if record is not None:
        yield record


def parse_qrels(text: str) -> dict[str, dict[str, int]]:
    """Parse judgments into ``{query id: {doc id: grade}}``.

    The layout is decided once per file from its column count, so one odd row cannot flip
    the interpretation:

    * 2 columns ``qid docid``: every listed pair is relevant (grade 1).
    * 3 columns ``qid docid grade``: integer grade as given.
    * 4 columns: TREC ``qid 0 docid grade`` when on *every* row the 2nd column is literally
      ``0`` and the 4th is an integer; otherwise SMART/CISI ``qid docid 0 0.0``, where
      every listed pair is relevant (grade 1) and the last two columns are ignored.

    Blank lines and ``#`` comments are skipped. Grades of 0 or less are kept (judged
    non-relevant) but do not make a query "judged". A pair listed twice keeps the
    highest grade.
    """
    rows: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rows.append((lineno, line.split()))
    if not rows:
        return {}
    widths = {len(cols) for _, cols in rows}
    if len(widths) != 1:
        raise ValueError(f"qrels rows have mixed column counts: {sorted(widths)}")
    width = widths.pop()
    if width not in (2, 3, 4):
        raise ValueError(f"qrels rows must have 2, 3 or 4 columns, not {width}")
    trec = width == 4 and all(c[1] == "0" and _INT.match(c[3]) for _, c in rows)

    qrels: dict[str, dict[str, int]] = {}
    for lineno, cols in rows:
        if trec:
            qid, docid, grade_text = cols[0], cols[2], cols[3]
        elif width == 3:
            qid, docid, grade_text = cols
        else:
            qid, docid, grade_text = cols[0], cols[1], "1"
        if not _INT.match(grade_text):
            raise ValueError(f"qrels line {lineno}: grade {grade_text!r} is not an integer")
        grade = int(grade_text)
        docs = qrels.setdefault(qid, {})
        docs[docid] = max(grade, docs.get(docid, grade))
    return qrels


def load_collection(path: str | Path) -> Collection:
    """Load a collection folder; ``.QRY``/``.REL`` are optional (documents-only corpus).

    Raises ``ValueError`` for duplicate ids, ambiguous files, or judgments naming documents
    that are not in the ``.ALL`` file (a sign that ids are spelled differently).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a collection folder: {folder}")
    all_file = _find_one(folder, ".all")
    if all_file is None:
        raise FileNotFoundError(f"{folder}: no *.ALL documents file")
    qry_file = _find_one(folder, ".qry")
    rel_file = _find_one(folder, ".rel")

    documents = [_to_document(r) for r in parse_records(_read(all_file))]
    _check_unique([d.id for d in documents], all_file)
    queries = [_to_query(r) for r in parse_records(_read(qry_file))] if qry_file else []
    _check_unique([q.id for q in queries], qry_file)
    qrels = parse_qrels(_read(rel_file)) if rel_file else {}

    doc_ids = {d.id for d in documents}
    unknown = sorted({d for docs in qrels.values() for d in docs} - doc_ids, key=_id_key)
    if unknown:
        raise ValueError(
            f"{rel_file}: {len(unknown)} judged doc ids not in {all_file.name}, e.g. {unknown[:5]}"
        )
    return Collection(name=folder.name.lower(), documents=documents, queries=queries, qrels=qrels)


def _find_one(folder: Path, suffix: str) -> Path | None:
    """The single file with this suffix (any case), ``None`` if absent; two is an error."""
    matches = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == suffix)
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise ValueError(f"{folder}: more than one *{suffix.upper()} file: {names}")
    return matches[0] if matches else None


def _read(path: Path) -> str:
    # Old collections are ASCII or Latin-1; Latin-1 never fails, so it is the fallback.
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _check_unique(ids: list[str], source: Path | None) -> None:
    dupes = sorted((i for i, n in Counter(ids).items() if n > 1), key=_id_key)
    if dupes:
        raise ValueError(f"{source}: duplicate record ids, e.g. {dupes[:5]}")


def _to_document(record: dict[str, list[str]]) -> TrecDocument:
    extra = {
        key: "\n".join(_trim_blank(lines))
        for key, lines in record.items()
        if key not in _KNOWN_FIELDS
    }
    return TrecDocument(
        id=record["I"][0],
        title=_one_line(record.get("T", [])),
        authors=[a.strip() for a in record.get("A", []) if a.strip()],
        text=_paragraphs(record.get("W", [])),
        extra=extra,
    )


def _to_query(record: dict[str, list[str]]) -> TrecQuery:
    parts = [_one_line(record.get("T", [])), _paragraphs(record.get("W", []))]
    return TrecQuery(id=record["I"][0], text="\n\n".join(p for p in parts if p))


def _one_line(lines: list[str]) -> str:
    return " ".join(s for s in (line.strip() for line in lines) if s)


def _paragraphs(lines: list[str]) -> str:
    """Re-flow hard-wrapped text: a blank line or an indented line starts a new paragraph."""
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped:
            if current:
                paragraphs.append(current)
                current = []
            continue
        if current and line[:1].isspace():
            paragraphs.append(current)
            current = []
        current.append(stripped)
    if current:
        paragraphs.append(current)
    return "\n\n".join(" ".join(p) for p in paragraphs)


def _trim_blank(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _id_key(value: str) -> tuple[int, int, str]:
    # Numeric ids sort as numbers ("2" before "10"); anything else after them, as text.
    return (0, int(value), "") if value.isdigit() else (1, 0, value)
