"""Ingest benchmark: CISI end to end (HTTP API -> PostgreSQL + outbox -> indexer ->
Elasticsearch), beside the raw encode of the same chunks (the physical limit on this
machine: MyAIServ's embedder, and on onnx-int8 also sentence-transformers' ONNX backend,
the peers' encoder) and beside the peers writing the same chunks with the same model
into the same cluster: LangChain's `ElasticsearchStore.add_texts` and Haystack's
sentence-transformers document embedder + `ElasticsearchDocumentStore.write_documents`
(bench/peers/run.py, in their own environment), on their default backend (torch) and on
MyAIServ's own ONNX int8 file. MyAIServ runs with one indexer worker, then two (scaling).

Runs against the local stack, in a database, Redis database and index prefix of its own
(created fresh each round, so the embedding cache is cold); BENCH_ROUNDS rounds (default
3). Writes bench/results.json (`ingest.*`, `peers.<peer>.ingest[_onnx_int8].*`,
`peers.<peer>.memory.*`, `peers.encode_onnx_int8.*`, `scaling.ingest.*`, `memory.*`)
and bench/REPORT.md. Run it with `make bench`.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import time
from typing import Any

import httpx
from sqlalchemy import func, select

from bench import report
from bench.against_peers import (
    DEFAULT,
    ENCODER,
    ONNX,
    PEERS,
    chunks_for,
    cisi_documents,
    embedding_threads,
    ingest_config,
    run_peer,
)
from bench.common import bench_settings, peak_rss_mb, prepare_database, rounds
from bench.spread import over_rounds
from myaiserv.auth.service import TenantService
from myaiserv.cache.client import create_redis_client
from myaiserv.config import Settings
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.db.models import OutboxEvent
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import free_port, spawn
from myaiserv.search.client import create_es_client

BENCH_DB = "myaiserv_bench"
BENCH_REDIS_DB = 2
PREFIX = "bench"


async def reset_index_and_cache(settings: Settings) -> None:
    """Delete the settings' indices (their prefix) and empty their Redis database."""
    es = create_es_client(settings)
    try:
        prefix = settings.es.index_prefix
        found = await es.options(ignore_status=404).indices.get(index=f"{prefix}-*")
        names = list(found.body) if found.meta.status == 200 else []
        if names:
            await es.indices.delete(index=",".join(names))
    finally:
        await es.close()
    redis = create_redis_client(settings)
    await redis.flushdb()
    await redis.aclose()


def raw_encode(settings: Settings, texts: list[str], backend: str) -> float:
    """One encode call of MyAIServ's embedder over every chunk text on ``backend``, after a
    warm-up: chunks/s."""
    embedder = Embedder.from_settings(settings.embedding.model_copy(update={"backend": backend}))
    embedder.load()
    embedder.encode_sync(texts[:64])  # warm-up
    started = time.perf_counter()
    embedder.encode_sync(texts)
    seconds = time.perf_counter() - started
    embedder.close()
    return len(texts) / seconds


async def end_to_end(
    settings: Settings, env: dict[str, str], docs: list, *, indexers: int = 1, backend: str
) -> dict[str, float]:
    """One round: fresh database, indices and cache; the API and ``indexers`` indexer
    workers as separate processes; from the first POST until the outbox is empty and the
    index refreshed (searchable)."""
    await prepare_database(settings, fresh=True)
    await reset_index_and_cache(settings)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        issued = await TenantService(session).create_tenant("bench", scopes=["read", "write"])

    port = free_port()
    # Every indexer may use every core: their batches lease the cores from each other
    # (myaiserv/embeddings/cores.py), as on any machine running several.
    worker_env = {**env, "MYAISERV_EMBEDDING__BACKEND": backend}
    workers = [
        spawn(
            ["indexer", "run"], {**worker_env, "MYAISERV_INDEXING__METRICS_PORT": str(free_port())}
        )
        for _ in range(indexers)
    ]
    api = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env)
    es = create_es_client(settings)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {issued.plaintext}"},
            timeout=120,
        ) as client:
            for _ in range(240):
                try:
                    ready = (await client.get("/ready")).status_code == 200
                    alias = await es.indices.exists_alias(name=f"{PREFIX}-documents")
                    if ready and alias:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)
            else:
                raise SystemExit("bench: API or indexer did not start")
            started = time.perf_counter()
            for i in range(0, len(docs), 100):
                batch = [
                    {
                        "text": d.text,
                        "title": d.title,
                        "source": d.source,
                        "tags": d.tags,
                        "metadata": d.metadata,
                    }
                    for d in docs[i : i + 100]
                ]
                resp = await client.post("/v1/documents/batch", json={"documents": batch})
                resp.raise_for_status()
            while True:
                async with sessions() as session:
                    left = await session.scalar(select(func.count(OutboxEvent.id)))
                if not left:
                    break
                await asyncio.sleep(0.2)
            await es.indices.refresh(index=f"{PREFIX}-documents")
            seconds = time.perf_counter() - started
        chunks = int((await es.count(index=f"{PREFIX}-documents"))["count"])
        worker_rss = max(peak_rss_mb(w.pid) for w in workers)
        api_rss = peak_rss_mb(api.pid)
    finally:
        for proc in (api, *workers):
            proc.send_signal(signal.SIGTERM)
        for proc in (api, *workers):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        await es.close()
        await engine.dispose()
    return {
        "seconds": seconds,
        "chunks": chunks,
        "worker_rss": worker_rss,
        "api_rss": api_rss,
    }


def median(values: list[float], digits: int = 2) -> float:
    return round(statistics.median(values), digits)


def torch_threads() -> int:
    """The threads torch computes with in a process that leaves it its default (MyAIServ
    on torch with ``embedding.threads`` 0, as in these rounds)."""
    import torch

    return int(torch.get_num_threads())


async def main() -> None:
    settings, env = bench_settings(BENCH_DB, BENCH_REDIS_DB, PREFIX)
    n_rounds = rounds()
    docs = cisi_documents()
    embedder = Embedder.from_settings(settings.embedding)
    chunks = chunks_for(settings, embedder)
    embedder.close()
    texts = [c["text"] for c in chunks]
    print(f"bench: {len(docs)} CISI documents, {len(chunks)} chunks, {n_rounds} rounds", flush=True)

    # MyAIServ runs on its configured backend (ONNX Runtime, int8, by default) and, for
    # a like-for-like line beside the peers' defaults (torch), on torch too; the peers run
    # on their default and on MyAIServ's ONNX int8 file. Each run is compared with the
    # raw encode on its own backend.
    backend = settings.embedding.backend
    backends = [backend, *(["torch"] if backend != "torch" else [])]
    raws: dict[str, list[list[float]]] = {b: [] for b in backends}  # per round
    ours: dict[tuple[int, str], list[dict[str, float]]] = {(1, b): [] for b in backends} | {
        (2, backend): []
    }
    variants = {v.backend: v for v in (DEFAULT, ONNX)}
    theirs: dict[tuple[str, str], list[dict[str, Any]]] = {
        (peer, b): [] for b in variants for peer in PEERS
    }
    # The peers' own encoder on MyAIServ's ONNX file, alone, per round: their limit there
    # (on torch, their encoder is MyAIServ's torch backend: sentence-transformers itself).
    encodes: list[dict[str, Any]] = []

    async def ours_once(workers: int, on: str) -> str:
        # The limit while this run ran: the raw encode just before and just after it,
        # averaged (the machine's speed drifts by several percent within minutes).
        before = raw_encode(settings, texts, on)
        run = await end_to_end(settings, env, docs, indexers=workers, backend=on)
        after = raw_encode(settings, texts, on)
        run["raw"] = (before + after) / 2
        ours[workers, on].append(run)
        raws[on][-1] += [before, after]
        return (
            f"myaiserv[{on}] x{workers} {run['chunks'] / run['seconds']:.1f} (raw {run['raw']:.1f})"
        )

    def theirs_once(peer: str, on: str) -> str:
        cfg = ingest_config(settings, peer, chunks, variants[on])
        theirs[peer, on].append(run_peer("ingest", peer, cfg))
        return f"{peer}[{on}] {theirs[peer, on][-1]['chunks_per_s']:.1f}"

    def encoder_once() -> str:
        cfg = ingest_config(settings, ENCODER, chunks, ONNX)
        encodes.append(run_peer("encode", ENCODER, cfg))
        return f"{ENCODER}[{ONNX.backend}] raw {encodes[-1]['chunks_per_s']:.1f}"

    # Warm-up, not timed: a first ingest makes Elasticsearch compile its indexing code
    # (its first one after start or idle costs it several times the CPU of later ones).
    warm = await end_to_end(settings, env, docs[:200], backend=backend)
    print(f"bench: warm-up ingest of 200 documents, {warm['seconds']:.1f} s", flush=True)

    systems = [
        *(("myaiserv", b) for b in backends),
        *((peer, b) for b in variants for peer in PEERS),
        (ENCODER, ONNX.backend),
    ]
    for n in range(1, n_rounds + 1):
        # Every system in every round, in an order that rotates from round to round, so
        # none always runs first (the machine's speed drifts); two indexer workers last.
        line = []
        for b in backends:
            raws[b].append([])
        shift = (n - 1) % len(systems)
        for system, on in systems[shift:] + systems[:shift]:
            if system == "myaiserv":
                line.append(await ours_once(1, on))
            elif system == ENCODER:
                line.append(encoder_once())
            else:
                line.append(theirs_once(system, on))
        line.append(await ours_once(2, backend))
        print(f"bench: round {n} (chunks/s): {', '.join(line)}", flush=True)

    def figures_of(
        runs: list[dict[str, Any]], on: str, limits: list[float] | None = None
    ) -> dict[str, Any]:
        """Chunks/s over the rounds, and each round's share of ``limits`` (per round; by
        default MyAIServ's raw encodes on ``on``: each MyAIServ run's own, the mean of its
        round's for anyone else)."""
        cps = [r["chunks"] / r["seconds"] for r in runs]
        seconds = statistics.median(r["seconds"] for r in runs)
        out: dict[str, Any] = {
            "backend": on,
            "documents": len(docs),
            "chunks": int(runs[-1]["chunks"]),
            "rounds": len(runs),
            "seconds": round(seconds, 2),
            "docs_per_s": round(len(docs) / seconds, 2),
            **over_rounds("chunks_per_s", cps),
        }
        if limits is None and on in raws:
            limits = [r.get("raw") or statistics.mean(raws[on][i]) for i, r in enumerate(runs)]
        if limits:
            ratios = [c / raw for c, raw in zip(cps, limits, strict=True)]
            out |= {
                "ratio_to_raw_encode": median(ratios, 4),
                "ratio_min": round(min(ratios), 4),
                "ratio_max": round(max(ratios), 4),
            }
        return out

    def raw_of(on: str) -> dict[str, float]:
        return over_rounds("raw_encode_chunks_per_s", [r for rs in raws[on] for r in rs])

    def threads_of(on: str) -> int:
        return torch_threads() if on == "torch" else embedding_threads(settings, on)

    ingest = {
        **figures_of(ours[1, backend], backend),
        "threads": threads_of(backend),
        **raw_of(backend),
    }
    if backend != "torch":
        ingest["torch"] = {
            **figures_of(ours[1, "torch"], "torch"),
            "threads": threads_of("torch"),
            **raw_of("torch"),
        }
    peers: dict[str, Any] = {peer: {"memory": {}} for peer in PEERS}
    peers[f"encode{ONNX.suffix}"] = {
        "backend": ONNX.backend,
        "threads": encodes[0]["threads"],
        "batch_size": encodes[0]["batch_size"],
        **over_rounds("chunks_per_s", [e["chunks_per_s"] for e in encodes]),
    }
    # Each peer run against its own encoder's raw rate in the same round.
    peer_limits = {ONNX.backend: [e["chunks_per_s"] for e in encodes]}
    for (peer, on), runs in theirs.items():
        suffix = variants[on].suffix
        peers[peer][f"ingest{suffix}"] = {
            **figures_of(runs, on, peer_limits.get(on)),
            "threads": runs[0]["threads"],
        }
        peers[peer]["memory"] |= over_rounds(
            f"ingest{suffix}_peak_rss_mb", [r["peak_rss_mb"] for r in runs], 1
        )
    two = figures_of(ours[2, backend], backend)
    scaling = {
        "ingest": {
            "workers_1_chunks_per_s": ingest["chunks_per_s"],
            "workers_2_chunks_per_s": two["chunks_per_s"],
            "factor": round(two["chunks_per_s"] / ingest["chunks_per_s"], 2),
        }
    }
    memory = {
        **over_rounds("indexer_peak_rss_mb", [r["worker_rss"] for r in ours[1, backend]], 1),
        **over_rounds("web_ingest_peak_rss_mb", [r["api_rss"] for r in ours[1, backend]], 1),
    }
    how = (
        f"median of {n_rounds} rounds, with the lowest and highest (ratios: median of the "
        "per-round ratios). Raw = one encode call over every chunk text (batch size "
        f"{settings.embedding.batch_size}) after a 64-chunk warm-up: MyAIServ's embedder in "
        "the benchmark process on the run's backend (on torch that is "
        "SentenceTransformer.encode, the peers' encoder too), and, on onnx-int8, "
        "SentenceTransformer.encode on sentence-transformers' ONNX backend in the peers' "
        "environment (their encoder, peers.encode_onnx_int8.*). Each MyAIServ run is set "
        "against the raw encode measured just before and just after it, averaged (the limit "
        "while it ran), each peer run against its own encoder's raw encode in the same "
        "round. MyAIServ = fresh database, indices and cold embedding cache, one API and "
        "one indexer process, from the first POST /v1/documents/batch (100 documents each) "
        f"until the outbox is empty and the index refreshed, on {backend} (ingest.*) and on "
        "torch (ingest.torch.*); LangChain and Haystack = each in a fresh process, model "
        "loaded and warmed up first (not timed), from the ingest call until the index is "
        "refreshed, on their default backend, torch (peers.*.ingest.*), and on MyAIServ's "
        "own ONNX int8 file through sentence-transformers' ONNX backend "
        "(peers.*.ingest_onnx_int8.*); every system with the threads MyAIServ gives that "
        "backend (ONNX: its setting or one per core, torch: torch's default); these in an "
        "order that rotates from round to round; last, MyAIServ "
        f"({backend}) with two indexer processes, each given half the cores. Before the "
        "rounds, one untimed ingest of 200 documents warms Elasticsearch up (its first "
        "indexing after a start costs it several times the CPU). Same chunk texts "
        "(MyAIServ's chunker) and model weights for all."
    )
    report.save("ingest", ingest, {"how": how})
    report.save("peers", peers, {"how_ingest": how}, merge=True)
    report.save("scaling", scaling, {"how_ingest": how}, merge=True)
    report.save(
        "memory",
        memory,
        {"how_ingest": "VmHWM (the resident-set high-water mark of the process's own "
         "address space), read from /proc/<pid>/status just before each ingest round's API "
         "and indexer processes are stopped: the median of the rounds, with the lowest and "
         "highest; the peers' processes read their own (/proc/self/status) at the end, the "
         "same figure."},
        merge=True,
    )  # fmt: skip
    for section, figures in (("ingest", ingest), ("peers", peers), ("scaling", scaling)):
        print(f"{section}: {figures}")
    print(f"memory: {memory}")


if __name__ == "__main__":
    asyncio.run(main())
