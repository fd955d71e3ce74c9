"""Real documents through the README's path beside `make run` (`make bench-real-docs`):
the HTML manual of the Linux kernel from Debian's ``linux-doc-6.1`` package (fetched and
cleaned by bench/corpus.py, as the scale corpus, cached in SCALE_WORK_DIR), its pages in
the corpus's order until REAL_DOCS_CHUNKS chunks (default 3,000), ingested by
``myaiserv ingest --tenant NAME DIR`` while the API and an indexer run as `make run` runs
them (``myaiserv serve`` and ``myaiserv indexer run``), beside the raw encode of exactly
those chunks on the same backend, alone on the machine.

Each of BENCH_ROUNDS rounds (default 3) starts from a fresh database, index and embedding
cache: the raw encode, the ingest (from its start until every document is indexed, its
own summary's seconds), the raw encode again; the round's ratio is the ingest's chunks/s
over the mean of the two encodes (the machine's speed drifts within minutes). Writes
``ingest.real_docs.*`` (chunks/s, tokens/s, ratio to the raw encode, each the median over
rounds with the lowest and highest round) and the report's section on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import corpus, report
from bench.common import ROOT, bench_settings, peak_rss_mb, prepare_database, rounds
from bench.ingest import reset_index_and_cache
from bench.spread import over_rounds
from myaiserv.config import Settings
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import local_api, tenant_key
from myaiserv.kit.cli import sessions

BENCH_DB = "myaiserv_bench_real_docs"
BENCH_REDIS_DB = 5
PREFIX = "benchreal"
PACKAGE = "linux-doc-6.1"
WORK = Path(os.environ.get("SCALE_WORK_DIR") or "/var/tmp/myaiserv-scale")  # noqa: S108


def pages(want: int) -> tuple[str, list[corpus.Doc], list[str]]:
    """(the package's version, its pages in corpus order until their chunks reach
    ``want``, every chunk text of those pages as the indexer embeds them). Pages the
    extractor refuses, or too long to store, are left out (ingest would report them)."""
    version = corpus.fetch(WORK, [PACKAGE])[PACKAGE]
    corpus.render(WORK, [PACKAGE])
    docs_root = WORK / "docs"
    paths = sorted(
        (p.relative_to(docs_root).as_posix() for p in (docs_root / PACKAGE).rglob("*.html")),
        key=corpus.order_key,
    )
    chunker = corpus.Chunker()
    chosen: list[corpus.Doc] = []
    texts: list[str] = []
    for rel in paths:
        if len(texts) >= want:
            break
        cut = chunker.page(docs_root / rel)
        if cut and cut[1]:
            chunks = cut[1]
            tokens = sum(c.token_count for c in chunks)
            chosen.append(corpus.Doc(rel, PACKAGE, len(chunks), tokens, None))
            texts += [c.text for c in chunks]
    chunker.close()
    return version, chosen, texts


def raw_encode(settings: Settings, texts: list[str]) -> dict[str, float]:
    """MyAIServ's embedder alone over every text, in the indexer's batches, after a
    warm-up: chunks/s and tokens/s."""
    embedder = Embedder.from_settings(settings.embedding)
    embedder.load()
    tokens = sum(embedder.count_tokens(texts))
    embedder.encode_sync(texts[:64])
    size = settings.indexing.batch_size
    started = time.perf_counter()
    for i in range(0, len(texts), size):
        embedder.encode_sync(texts[i : i + size])
    seconds = time.perf_counter() - started
    embedder.close()
    return {"chunks_per_s": len(texts) / seconds, "tokens_per_s": tokens / seconds}


def ingest_command(folder: Path, tenant: str, env: dict[str, str]) -> dict[str, Any]:
    """``myaiserv ingest --tenant NAME DIR --json`` as a user runs it: its summary, and its
    peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "myaiserv", "ingest", "--tenant", tenant, str(folder), "--json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rss = 0.0
    while proc.poll() is None:
        with contextlib.suppress(OSError):
            rss = max(rss, peak_rss_mb(proc.pid))
        time.sleep(0.5)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"bench: myaiserv ingest failed ({proc.returncode}):\n{err[-3000:]}")
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    summary["rss_mb"] = rss
    summary["wall_s"] = time.perf_counter() - started
    return summary


async def one_round(
    settings: Settings, env: dict[str, str], folders: tuple[Path, Path], texts: list[str], n: int
) -> dict[str, Any]:
    """Raw encode, the ingest beside `make run`'s processes, raw encode again."""
    folder, warm = folders
    await prepare_database(settings, fresh=True)
    await reset_index_and_cache(settings)
    before = raw_encode(settings, texts)
    async with sessions(settings) as sessionmaker:
        await tenant_key(sessionmaker, f"real-{n}")
        await tenant_key(sessionmaker, f"warm-{n}")
    # `make run`: the API and an indexer. Both embed; nothing divides the cores up front.
    async with local_api(env) as _:
        # Untimed: Elasticsearch's first writes after a start cost it several times the CPU
        # of later ones (bench/ingest.py measured it); a few pages warm it.
        ingest_command(warm, f"warm-{n}", env)
        run = ingest_command(folder, f"real-{n}", env)
    after = raw_encode(settings, texts)
    if run["indexed_by"] != "indexers":
        raise SystemExit(f"bench: the ingest indexed in its own process ({run['indexed_by']})")
    raw = {k: (before[k] + after[k]) / 2 for k in before}
    return {**run, "raw_chunks_per_s": raw["chunks_per_s"], "raw_tokens_per_s": raw["tokens_per_s"]}


async def main() -> None:
    settings, env = bench_settings(BENCH_DB, BENCH_REDIS_DB, PREFIX)
    want = int(os.environ.get("REAL_DOCS_CHUNKS", "3000"))
    version, chosen, texts = pages(want)
    _, (folder, warm) = corpus.lay_out(WORK, [chosen, chosen[:3]])
    n_rounds = rounds()
    print(
        f"bench: {len(chosen)} pages of {PACKAGE} {version}, {len(texts)} chunks, "
        f"{n_rounds} rounds",
        flush=True,
    )
    runs = []
    for n in range(n_rounds):
        run = await one_round(settings, env, (folder, warm), texts, n)
        runs.append(run)
        ratio = run["chunks_per_s"] / run["raw_chunks_per_s"]
        print(
            f"bench: round {n + 1}: ingest {run['chunks_per_s']:.1f} chunks/s, raw encode "
            f"{run['raw_chunks_per_s']:.1f}, ratio {ratio:.2f}",
            flush=True,
        )
    if any(r["chunks"] != len(texts) for r in runs):
        raise SystemExit(f"bench: indexed {[r['chunks'] for r in runs]} chunks, not {len(texts)}")
    figures = {
        "package": PACKAGE,
        "version": version,
        "documents": len(chosen),
        "chunks": len(texts),
        "tokens": runs[0]["tokens"],
        "rounds": n_rounds,
        **over_rounds("chunks_per_s", [r["chunks_per_s"] for r in runs]),
        **over_rounds("tokens_per_s", [r["tokens_per_s"] for r in runs], 0),
        **over_rounds("raw_encode_chunks_per_s", [r["raw_chunks_per_s"] for r in runs]),
        **over_rounds("raw_encode_tokens_per_s", [r["raw_tokens_per_s"] for r in runs], 0),
        **over_rounds(
            "ratio_to_raw_encode", [r["chunks_per_s"] / r["raw_chunks_per_s"] for r in runs], 3
        ),
        "ingest_rss_mb": round(statistics.median(r["rss_mb"] for r in runs), 1),
    }
    how = (
        f"{len(chosen)} pages of Debian's {PACKAGE} ({version}; HTML, cleaned as the "
        f"scale corpus), {len(texts)} chunks; `myaiserv ingest --tenant NAME DIR` while "
        "`myaiserv serve` and `myaiserv indexer run` run (as `make run`): from its start until "
        "every document is indexed (its summary); beside MyAIServ's embedder alone on the same "
        "chunks and backend, in the indexer's batches, just before and just after each ingest "
        f"(their mean); {n_rounds} rounds, each on a fresh database, index and cache"
    )
    report.save("ingest", {"real_docs": figures}, {"how_real_docs": how}, merge=True)
    print(json.dumps(figures, indent=2), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
