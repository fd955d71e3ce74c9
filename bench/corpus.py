"""The scale benchmark's corpus: real documents from Debian's packages, counted in chunks
by MyAIServ's own extractor and chunker, with queries held out of it.

The packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into
the work folder (pinned versions, recorded; nothing is installed into the system but
``mandoc``, the renderer of manual pages): the HTML manuals of the Linux kernel, Python,
PostgreSQL, Node.js and SQLite, the Debian Administrator's Handbook and the Debian
Reference, and the manual pages of man-pages, perl-doc, OpenSSL, git, Tcl and Tk, rendered
to HTML by mandoc (about 180,000 chunks in all). An HTML page keeps its title and its main
element only (a Sphinx page repeats its whole navigation sidebar on every page, which would
index the same table of contents thousands of times); a manual page drops mandoc's header
and footer lines. Aliases (symbolic links and ``.so`` pages) are left out: they repeat a
page.

Every document is extracted and chunked exactly as ``myaiserv ingest`` and the indexer do
(same extractor, chunker, tokenizer, token budget and overlap), without embedding, so the
chunk counts choose the documents. Documents go in one fixed pseudo-random order (a hash
of their path), so every slice of the corpus mixes all packages. Queries come from
documents held out of the corpus, the first usable ones in that order: a manual page's
one-line description (``ls - list directory contents`` gives "list directory contents"),
a page's title otherwise (without its site suffix and section number).

It stays one module past 400 lines: fetching, rendering, counting and choosing are the
steps of one corpus, sharing its ``Doc`` records and its order.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

PACKAGES: tuple[tuple[str, str, str], ...] = (
    # (package, kind, folder inside it)
    ("linux-doc-6.1", "html", "usr/share/doc/linux-doc-6.1/html"),
    ("python3.11-doc", "html", "usr/share/doc/python3.11/html"),
    ("postgresql-doc-15", "html", "usr/share/doc/postgresql-doc-15/html"),
    ("nodejs-doc", "html", "usr/share/doc/nodejs/api"),
    ("sqlite3-doc", "html", "usr/share/doc/sqlite3"),
    ("debian-handbook", "html", "usr/share/doc/debian-handbook/html/en-US"),
    ("debian-reference-en", "html", "usr/share/debian-reference"),
    ("manpages", "man", "usr/share/man"),
    ("manpages-dev", "man", "usr/share/man"),
    ("perl-doc", "man", "usr/share/man"),
    ("libssl-doc", "man", "usr/share/man"),
    ("git-man", "man", "usr/share/man"),
    ("tcl8.6-doc", "man", "usr/share/man"),
    ("tk8.6-doc", "man", "usr/share/man"),
)
# Pages that are lists of links, not text: indices and search pages of the HTML manuals.
_NOT_TEXT = re.compile(r"(^|/)(_sources|_static|_images|_downloads)/|(^|/)(genindex|search|"
                       r"py-modindex|bookindex)[^/]*\.html$")  # fmt: skip
_MAN_PAGE = re.compile(r"^man[0-9n][^/]*/[^/]+\.gz$")  # English pages only: man1/ls.1.gz
_TITLE_SUFFIX = re.compile(
    r"\s+(?:[\u2014|-]\s+The Linux Kernel documentation|[\u2014-]\s+Python [\d.]+ documentation"
    r"|\|\s+Node\.js v[\d.]+ Documentation)$"
)
_SECTION_NUMBER = re.compile(r"^(?:[A-Z]\.|\d+\.)(?:\d+\.)*\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*")


@dataclass(frozen=True)
class Doc:
    """One document of the corpus as counted: its path under the docs folder."""

    path: str
    package: str
    chunks: int
    tokens: int
    query: str | None


# -- pure parts (unit-tested) ------------------------------------------------------------


def is_alias(page: bytes) -> bool:
    """A manual page that only includes another (``.so man3/other.3``)."""
    lines = [
        ln for ln in page.splitlines() if ln.strip() and not ln.startswith((b'.\\"', b"'\\\""))
    ]
    return len(lines) <= 2 and any(ln.startswith(b".so ") for ln in lines)


def clean_html(data: bytes) -> bytes:
    """The page's title and main text: its main element where the site's layout has one,
    else the body without DocBook's navigation bars or SQLite's menus; headings' permalink
    marks and mandoc's header and footer lines dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for junk in [
        # DocBook's navigation bars; what SQLite's own search leaves out (its menus).
        *soup.find_all("div", class_=["navheader", "navfooter", "nosearch"]),
        *soup.find_all("table", class_=["head", "foot"]),
        *soup.find_all("a", class_="headerlink"),
    ]:
        junk.decompose()
    # Sphinx (kernel, Python) marks its text role="main"; Node.js's is #column1.
    main = soup.find(attrs={"role": "main"}) or soup.find(id="column1")
    if main is not None:
        content = str(main)
    elif soup.body is not None:
        content = soup.body.decode_contents()
    else:
        content = str(soup)
    head = f'<meta charset="utf-8"><title>{escape(title)}</title>'
    return f"<!DOCTYPE html>\n<html><head>{head}</head><body>{content}</body></html>\n".encode()


def query_of(kind: str, title: str | None, text: str) -> str | None:
    """A search a reader of this document might type, or None when it has none fit to be a
    query (2 to 12 words)."""
    candidate: str | None = None
    if kind == "man":
        # "# NAME\n\nls - list directory contents"
        match = re.search(r"^#+ NAME\s*\n+(.+)$", text, re.MULTILINE)
        if match:
            parts = re.split(r"\s+(?:-|\u2014|\\-)\s+", match.group(1), maxsplit=1)
            candidate = parts[1] if len(parts) == 2 else None
    elif title:
        candidate = _SECTION_NUMBER.sub("", _TITLE_SUFFIX.sub("", title.strip()))
    if not candidate:
        return None
    candidate = " ".join(candidate.split()).rstrip(".")
    words = _WORD.findall(candidate)
    return candidate if 2 <= len(words) <= 12 else None


def order_key(path: str) -> str:
    """The corpus order: a hash of the path, so any prefix mixes every package."""
    return hashlib.sha256(path.encode()).hexdigest()


def hold_out(docs: Iterable[Doc], queries: int) -> tuple[list[str], list[Doc]]:
    """(queries, the rest): the first ``queries`` documents in corpus order with a usable,
    not yet taken query give their queries and are left out of the corpus."""
    ordered = sorted(docs, key=lambda d: order_key(d.path))
    taken: list[str] = []
    seen: set[str] = set()
    rest: list[Doc] = []
    for doc in ordered:
        key = (doc.query or "").lower()
        if len(taken) < queries and doc.query and key not in seen:
            taken.append(doc.query)
            seen.add(key)
        else:
            rest.append(doc)
    return taken, rest


def select(docs: list[Doc], max_chunks: int) -> list[Doc]:
    """The corpus: documents in order until their chunks reach ``max_chunks`` (the last
    one may pass it). Raises ValueError when all of them fall short."""
    chosen, total = [], 0
    for doc in docs:
        if total >= max_chunks:
            break
        if doc.chunks:
            chosen.append(doc)
            total += doc.chunks
    if total < max_chunks:
        raise ValueError(f"the packages give {total} chunks, fewer than {max_chunks}")
    return chosen


def boundaries(max_chunks: int, points: Iterable[int], step: int) -> list[int]:
    """Where the corpus is cut into portions (chunk totals, ascending, the last
    ``max_chunks``): at each measuring point below ``max_chunks`` and every ``step``
    chunks in between (each portion a checkpoint)."""
    marks = {p for p in points if 0 < p < max_chunks} | {max_chunks}
    previous = 0
    for mark in sorted(marks):
        n = previous + step
        while n < mark:
            marks.add(n)
            n += step
        previous = mark
    return sorted(marks)


def split(docs: list[Doc], bounds: list[int]) -> list[list[Doc]]:
    """``docs`` in portions: each ends with the document that brings the running total to
    its boundary (or past it); a boundary already passed gives no empty portion."""
    portions: list[list[Doc]] = []
    current: list[Doc] = []
    total, marks = 0, iter(bounds)
    mark = next(marks, None)
    for doc in docs:
        current.append(doc)
        total += doc.chunks
        if mark is not None and total >= mark:
            portions.append(current)
            current = []
            while mark is not None and total >= mark:
                mark = next(marks, None)
    if current:
        portions.append(current)
    return portions


def measuring_points(
    portions: list[list[Doc]], points: Iterable[int], max_chunks: int
) -> dict[int, int]:
    """Portion index -> the nominal size measured after it: the first portion whose
    running total reaches each point below ``max_chunks``, and the last, ``max_chunks``."""
    out: dict[int, int] = {}
    totals, total = [], 0
    for portion in portions:
        total += sum(d.chunks for d in portion)
        totals.append(total)
    for point in sorted(p for p in points if 0 < p < max_chunks):
        index = next(i for i, t in enumerate(totals) if t >= point)
        out.setdefault(index, point)
    out[len(portions) - 1] = max_chunks
    return out


@dataclass(frozen=True)
class Selection:
    """The corpus of one run: its portions (folders for `myaiserv ingest`), the chunks
    each adds as counted, where searches are measured, and the held-out queries."""

    id: str
    folders: list[Path]
    portion_chunks: list[int]
    points: dict[int, int]
    queries: list[str]
    packages: dict[str, str]
    documents: int
    prepare_s: float  # fetching, rendering and counting, when they were done
    # package -> documents and chunks it has (as counted), and those chosen
    composition: dict[str, dict[str, int]]

    @property
    def chunks(self) -> int:
        return sum(self.portion_chunks)


# -- fetching, rendering and counting ------------------------------------------------------


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def ensure_mandoc() -> str:
    """mandoc, installed with apt-get where it is missing."""
    found = shutil.which("mandoc")
    if found:
        return found
    print("corpus: installing mandoc (apt-get)", flush=True)
    _run(["apt-get", "install", "-y", "--no-install-recommends", "mandoc"])
    return shutil.which("mandoc") or "mandoc"


def fetch(work: Path, only: Iterable[str] | None = None) -> dict[str, str]:
    """Every package's (or those ``only`` names) .deb downloaded (once) and unpacked
    under ``work/pkgs``; returns package -> version."""
    debs, pkgs = work / "debs", work / "pkgs"
    debs.mkdir(parents=True, exist_ok=True)
    versions = {}
    for name, _, _ in _packages(only):
        found = sorted(debs.glob(f"{name}_*.deb"))
        if not found:
            print(f"corpus: apt-get download {name}", flush=True)
            _run(["apt-get", "download", name], cwd=debs)
            found = sorted(debs.glob(f"{name}_*.deb"))
        deb = found[-1]
        versions[name] = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.decode().strip()
        target = pkgs / name
        if not (target / ".unpacked").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            _run(["dpkg-deb", "-x", str(deb), str(target)])
            (target / ".unpacked").touch()
    return versions


def _packages(only: Iterable[str] | None) -> list[tuple[str, str, str]]:
    names = set(only) if only is not None else None
    return [p for p in PACKAGES if names is None or p[0] in names]


def _sources(work: Path, only: Iterable[str] | None) -> Iterator[tuple[str, str, Path, str]]:
    """(package, kind, file, its path in the docs folder) of every page to render."""
    for name, kind, folder in _packages(only):
        root = work / "pkgs" / name / folder
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() or not path.is_file():
                continue
            if kind == "html" and path.suffix == ".html" and not _NOT_TEXT.search(rel):
                yield name, kind, path, f"{name}/{rel}"
            elif kind == "man" and _MAN_PAGE.match(rel):
                yield name, kind, path, f"{name}/{rel.removesuffix('.gz')}.html"


def render(work: Path, only: Iterable[str] | None = None) -> None:
    """Every page (of the packages ``only`` names) written, cleaned (manual pages
    rendered by mandoc first), under ``work/docs``; pages already there are kept."""
    packages = _packages(only)
    mandoc = ensure_mandoc() if any(kind == "man" for _, kind, _ in packages) else ""
    done = 0
    for _, kind, source, rel in _sources(work, only):
        target = work / "docs" / rel
        if target.exists():
            continue
        data = source.read_bytes()
        if kind == "man":
            page = gzip.decompress(data)
            if is_alias(page):
                continue
            data = subprocess.run(
                [mandoc, "-T", "html", "-O", "style=none"], input=page, capture_output=True,
                check=False,
            ).stdout  # fmt: skip
            if not data.strip():
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")  # a page is there whole or not at all
        partial.write_bytes(clean_html(data))
        partial.rename(target)
        done += 1
    print(f"corpus: {done} pages rendered", flush=True)


class Chunker:
    """Pages extracted and chunked exactly as ``myaiserv ingest`` and the indexer do (same
    extractor, chunker, tokenizer, token budget and overlap), without embedding."""

    def __init__(self) -> None:
        from myaiserv.config import load_settings
        from myaiserv.embeddings.model import Embedder

        self.settings = load_settings()
        self.embedder = Embedder.from_settings(self.settings.embedding)
        info = self.embedder.load()
        cfg = self.settings.indexing
        self.max_tokens = min(cfg.chunk_max_tokens, info.max_seq_length - 2)
        self.overlap = min(cfg.chunk_overlap_tokens, self.max_tokens // 2)

    def page(self, path: Path) -> tuple[Any, list[Any]] | None:
        """(the page extracted, its chunks); None for a page the extractor refuses, or
        too long to store (ingest would report it failed)."""
        from indexers.chunk import chunk_text
        from myaiserv.extract import ExtractionError, extract

        try:
            extracted = extract(path.read_bytes(), None, path.name)
        except ExtractionError:
            return None
        if len(extracted.text) > self.settings.limits.max_document_chars:
            return None
        chunks = chunk_text(
            "count",
            extracted.text,
            count_tokens=self.embedder.count_tokens,
            max_tokens=self.max_tokens,
            overlap_tokens=self.overlap,
            title=extracted.title or path.name,  # as the document service titles it
        )
        return extracted, chunks

    def close(self) -> None:
        self.embedder.close()


def count(work: Path, packages: dict[str, str]) -> list[Doc]:
    """Every rendered page of ``packages`` as ``Chunker`` cuts it: its chunks, tokens and
    query."""
    chunker = Chunker()
    kinds = {name: kind for name, kind, _ in PACKAGES}
    docs = []
    for n, path in enumerate(sorted((work / "docs").rglob("*.html"))):
        rel = path.relative_to(work / "docs").as_posix()
        package = rel.split("/", 1)[0]
        if package not in packages:
            continue
        cut = chunker.page(path)
        if cut is None:
            continue
        extracted, chunks = cut
        query = query_of(kinds[package], extracted.title, extracted.text)
        docs.append(Doc(rel, package, len(chunks), sum(c.token_count for c in chunks), query))
        if n % 2000 == 1999:
            print(f"corpus: {n + 1} pages counted", flush=True)
    chunker.close()
    return docs


def manifest(work: Path) -> tuple[dict[str, str], list[Doc]]:
    """The packages' versions and every document counted: fetched, rendered and counted
    once, then read from ``work/manifest.json`` (kept while the package list is the same)."""
    path = work / "manifest.json"
    names = [name for name, _, _ in PACKAGES]
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("packages_list") == names:
            return saved["packages"], [Doc(**d) for d in saved["docs"]]
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    versions = fetch(work)
    render(work)
    docs = count(work, versions)
    saved = {"packages_list": names, "packages": versions, "docs": [asdict(d) for d in docs],
             "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    path.write_text(json.dumps(saved))
    return versions, docs


def lay_out(work: Path, portions: list[list[Doc]]) -> tuple[str, list[Path]]:
    """Each portion as a folder of hard links to its pages (what ``myaiserv ingest`` is
    given), under a folder named by the selection; returns (its id, the folders)."""
    digest = hashlib.sha256(
        json.dumps([[d.path for d in p] for p in portions]).encode()
    ).hexdigest()[:12]
    root = work / f"selection-{digest}"
    folders = []
    for i, portion in enumerate(portions):
        folder = root / f"{i:02d}"
        for doc in portion:
            target = folder / doc.path
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(work / "docs" / doc.path, target)
        folders.append(folder)
    return digest, folders


def selection(
    work: Path, *, max_chunks: int, points: Iterable[int], step: int, queries: int
) -> Selection:
    """The corpus for ``max_chunks``: the manifest (made once), queries held out, the
    documents chosen and laid out in portions."""
    packages, docs = manifest(work)
    prepared = json.loads((work / "manifest.json").read_text()).get("seconds", 0.0)
    taken, rest = hold_out(docs, queries)
    chosen = select(rest, max_chunks)
    portions = split(chosen, boundaries(max_chunks, points, step))
    digest, folders = lay_out(work, portions)
    composition: dict[str, dict[str, int]] = {}
    for group, docs_of in (("available", docs), ("chosen", chosen)):
        for d in docs_of:
            row = composition.setdefault(d.package, {})
            row[f"{group}_documents"] = row.get(f"{group}_documents", 0) + 1
            row[f"{group}_chunks"] = row.get(f"{group}_chunks", 0) + d.chunks
    return Selection(
        id=digest,
        folders=folders,
        portion_chunks=[sum(d.chunks for d in p) for p in portions],
        points=measuring_points(portions, points, max_chunks),
        queries=taken,
        packages=packages,
        documents=len(chosen),
        prepare_s=prepared,
        composition=composition,
    )


def chunk_texts(work: Path, selection: Selection, n: int) -> list[str]:
    """The first ``n`` chunk texts of the corpus, as the indexer embeds them."""
    chunker = Chunker()
    texts: list[str] = []
    try:
        for folder in selection.folders:
            for path in sorted(folder.rglob("*.html")):
                cut = chunker.page(path)
                texts += [c.text for c in cut[1]] if cut else []
                if len(texts) >= n:
                    return texts[:n]
        return texts
    finally:
        chunker.close()
