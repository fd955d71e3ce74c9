"""How MyAIServ's costs grow with the corpus (`make bench-scale`; not part of `make bench`).

A corpus of real documents from Debian's packages (bench/corpus.py, about 180,000 chunks
available; SCALE_MAX_CHUNKS, default 150,000, are used) is ingested through MyAIServ's
own ingest path into a private stack, once on a single Elasticsearch node and once on a
3-node cluster with one replica (bench/growth_ingest.py), with searches measured as the
corpus passes each size (SCALE_POINTS, default 2,000 and 20,000, and the largest;
bench/growth_search.py); then the vector index options at the largest size, and runs
search with SCALE_RUNS recorded runs (bench/growth_runs.py).

Stages (SCALE_STAGES, comma-separated; all of them by default, in this order):

- ``corpus``: fetch, render and count the corpus (minutes; the others do it when needed);
- ``single``: one node, the whole corpus end to end (the model embeds every chunk), then
  kNN recall@10 against exact search, and every vector saved for ``vectors``;
- ``cluster``: three nodes, replicas 1; end to end (cold) up to SCALE_CLUSTER_COLD_CHUNKS
  (default 20,000), then the rest from the vectors the single node's indexer computed,
  loaded into this indexer's embedding cache (a cache hit per chunk, as in a reindex), so
  the corpus is embedded once, not twice: Elasticsearch does the same work either way, so
  its figures (disk, heap, CPU per chunk, search) are the cluster's own; the cluster's
  end-to-end throughput is that of its cold part, its cached throughput is reported apart;
- ``vectors``: hnsw, int8_hnsw and bbq_hnsw re-checked on the largest size's vectors;
- ``runs``: runs search with SCALE_RUNS (100,000) runs.

A topology stage checkpoints after every portion of the corpus (SCALE_PORTION_CHUNKS,
25,000): with SCALE_STAGE_MINUTES set, it stops before a portion that would not end in
time, and running it again goes on from there. Everything measured is kept in the work
folder (SCALE_WORK_DIR, /var/tmp/myaiserv-scale) and bench/results.json's ``scale``
section is rewritten from it after every stage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import corpus, report
from bench.common import bench_settings
from bench.growth_figures import figures, warm_portion

STAGES = ("corpus", "single", "cluster", "vectors", "runs")


@dataclass(frozen=True)
class Config:
    # Not /tmp: the corpus, the stacks' data and the checkpoints outlive a session.
    work: Path = Path("/var/tmp/myaiserv-scale")  # noqa: S108
    max_chunks: int = 150_000
    points: tuple[int, ...] = (2_000, 20_000)
    portion_chunks: int = 25_000
    queries: int = 200
    rounds: int = 3
    es_heap: str = "1g"
    cluster_cold_chunks: int = 20_000
    runs: int = 100_000
    run_texts: int = 2_000
    stage_minutes: float = 0.0
    sample_s: float = 10.0
    stages: tuple[str, ...] = field(default=STAGES)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Config:
        def number(name: str, default: float) -> float:
            return float(env[name]) if env.get(name) else default

        base = cls()
        stages = tuple(s.strip() for s in env.get("SCALE_STAGES", "").split(",") if s.strip())
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise SystemExit(f"scale: unknown stage(s) {', '.join(sorted(unknown))}; {STAGES}")
        points = env.get("SCALE_POINTS")
        return cls(
            work=Path(env.get("SCALE_WORK_DIR") or base.work),
            max_chunks=int(number("SCALE_MAX_CHUNKS", base.max_chunks)),
            points=tuple(int(p) for p in points.split(",")) if points else base.points,
            portion_chunks=int(number("SCALE_PORTION_CHUNKS", base.portion_chunks)),
            queries=int(number("SCALE_QUERIES", base.queries)),
            rounds=int(number("SCALE_ROUNDS", base.rounds)),
            es_heap=env.get("SCALE_ES_HEAP") or base.es_heap,
            cluster_cold_chunks=int(number("SCALE_CLUSTER_COLD_CHUNKS", base.cluster_cold_chunks)),
            runs=int(number("SCALE_RUNS", base.runs)),
            run_texts=int(number("SCALE_RUN_TEXTS", base.run_texts)),
            stage_minutes=number("SCALE_STAGE_MINUTES", 0.0),
            sample_s=number("SCALE_SAMPLE_S", base.sample_s),
            stages=tuple(s for s in STAGES if s in stages) if stages else STAGES,
        )


# -- stages ------------------------------------------------------------------------------


def check_machine(cfg: Config) -> dict[str, Any]:
    """Disk and memory, against a rough need for this size; refuses far too little."""
    cfg.work.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(cfg.work).free / 2**30
    meminfo = {
        line.split(":")[0]: int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
    }
    available_gb = meminfo["MemAvailable"] / 2**20
    need_disk = 2 + 8 * cfg.max_chunks / 150_000
    heap_gb = float(cfg.es_heap.rstrip("gGmM")) / (1024 if cfg.es_heap[-1] in "mM" else 1)
    need_memory = 3 * heap_gb + 3
    print(
        f"scale: {free_gb:.1f} GB free on {cfg.work} (need ~{need_disk:.0f}), "
        f"{available_gb:.1f} GB memory available (need ~{need_memory:.0f})",
        flush=True,
    )
    if free_gb < need_disk or available_gb < need_memory:
        raise SystemExit("scale: not enough disk or memory for this size")
    return {"disk_free_gb": round(free_gb, 1), "memory_available_gb": round(available_gb, 1)}


def encode_cost(texts: list[str]) -> dict[str, float]:
    """Seconds to encode one chunk on one core (one ONNX thread) and on every core, over
    ``texts`` after a warm-up (in this process, nothing else of the benchmark running)."""
    from myaiserv.config import load_settings
    from myaiserv.embeddings.model import Embedder

    out: dict[str, float] = {"chunks": len(texts), "cores": os.cpu_count() or 1}
    settings = load_settings().embedding
    for name, threads in (("one_core", 1), ("all_cores", 0)):
        embedder = Embedder.from_settings(settings.model_copy(update={"threads": threads}))
        out["dims"] = embedder.load().dims
        embedder.encode_sync(texts[:16])
        started = time.perf_counter()
        embedder.encode_sync(texts)
        out[f"s_per_chunk_{name}"] = round((time.perf_counter() - started) / len(texts), 5)
        embedder.close()
    out["backend"] = settings.backend  # type: ignore[assignment]
    return out


def _state_path(cfg: Config, name: str, selection: str) -> Path:
    """A stage's saved state: named by the corpus selection (the runs stage's by its
    size), so a small run and the full one keep theirs side by side in one work folder."""
    key = f"{cfg.runs}-{cfg.run_texts}" if name == "runs" else selection
    return cfg.work / "state" / f"{name}-{key}.json"


def _state(cfg: Config, name: str, selection: str) -> dict[str, Any] | None:
    path = _state_path(cfg, name, selection)
    return json.loads(path.read_text()) if path.exists() else None


def _save_state(cfg: Config, name: str, selection: str, state: dict[str, Any]) -> None:
    path = _state_path(cfg, name, selection)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1))


async def run_stages(cfg: Config) -> None:
    from bench import growth_ingest, growth_runs, growth_search

    deadline = time.monotonic() + cfg.stage_minutes * 60 if cfg.stage_minutes else None
    machine = check_machine(cfg)
    selection = corpus.selection(cfg.work, max_chunks=cfg.max_chunks, points=cfg.points,
                                 step=cfg.portion_chunks, queries=cfg.queries)  # fmt: skip
    print(f"scale: corpus {selection.id}: {selection.documents} documents, {selection.chunks} "
          f"chunks counted, {len(selection.folders)} portions, searches after portions "
          f"{selection.points}, {len(selection.queries)} queries", flush=True)  # fmt: skip
    vectors_file = cfg.work / "state" / f"vectors-{selection.id}.npz"
    # What the searches at one size take, roughly: an API start, then five kinds of
    # request per query and round at about 0.1 s each on this machine.
    point_s = 60 + cfg.rounds * len(selection.queries) * 5 * 0.1

    async def measure(ctx: growth_ingest.Context, nominal: int) -> None:
        print(f"scale: {ctx.topology.name}: searches at {nominal}", flush=True)
        found = await growth_search.measure(
            ctx.settings, ctx.env, str(ctx.tenant_id), ctx.key, selection.queries, cfg.rounds
        )
        last = ctx.state["portions"][-1]
        found.update(
            chunks=last["chunks"],
            es_disk_bytes=last["disk_bytes"],
            es_disk_primary_bytes=last["disk_primary_bytes"],
            es_live_heap_bytes=last["live_heap_bytes"],
        )
        ctx.state["points"][str(nominal)] = found

    async def finish_single(ctx: growth_ingest.Context) -> None:
        print("scale: single: kNN recall@10 against exact search", flush=True)
        ctx.state["recall"] = await growth_search.knn_recall(
            ctx.settings, ctx.alias, str(ctx.tenant_id), selection.queries, vectors_file
        )
        ctx.state["encode"] = encode_cost(corpus.chunk_texts(cfg.work, selection, 256))

    async def finish_cluster(ctx: growth_ingest.Context) -> None:
        return None

    # The corpus is made (or read) above, before any stage needs it.
    for stage in (s for s in cfg.stages if s != "corpus"):
        if deadline is not None and time.monotonic() > deadline:
            print(f"scale: out of time before {stage}", flush=True)
            break
        stage_started = time.monotonic()
        single = _state(cfg, "single", selection.id)
        if stage == "single":
            await growth_ingest.run_topology(
                growth_ingest.TOPOLOGIES["single"], selection, cfg.work, es_heap=cfg.es_heap,
                sample_s=cfg.sample_s, deadline=deadline, point_s=point_s, measure=measure,
                finish=finish_single,
            )  # fmt: skip
        elif stage == "cluster":
            warm_from = None
            if single and single.get("complete"):
                warm_from = warm_portion(selection.portion_chunks, cfg.cluster_cold_chunks)
            else:
                print("scale: cluster: the single node is not complete, so no vectors are "
                      "cached: every chunk is embedded", flush=True)  # fmt: skip
            await growth_ingest.run_topology(
                growth_ingest.TOPOLOGIES["cluster"], selection, cfg.work, es_heap=cfg.es_heap,
                sample_s=cfg.sample_s, deadline=deadline, point_s=point_s, measure=measure,
                finish=finish_cluster, warm_from=warm_from,
            )  # fmt: skip
        elif stage == "vectors":
            if _state(cfg, "vectors", selection.id):
                print("scale: vectors: measured already (delete its state to measure again)")
            elif not vectors_file.exists():
                print("scale: vectors: the single stage has not saved the vectors yet", flush=True)
            else:
                settings, _ = bench_settings(growth_ingest.DB, 1, growth_ingest.PREFIX)
                found = await growth_search.vector_options(
                    settings, cfg.work / "stacks" / "vectors", vectors_file, selection.queries,
                    cfg.es_heap,
                )  # fmt: skip
                found["stage_s"] = round(time.monotonic() - stage_started, 1)
                _save_state(cfg, "vectors", selection.id, found)
        elif stage == "runs":
            if _state(cfg, "runs", selection.id):
                print("scale: runs: measured already (delete its state to measure again)")
            else:
                found = await growth_runs.runs_stage(
                    cfg.work, runs=cfg.runs, distinct=cfg.run_texts, rounds=cfg.rounds,
                    es_heap=cfg.es_heap,
                )  # fmt: skip
                found["stage_s"] = round(time.monotonic() - stage_started, 1)
                _save_state(cfg, "runs", selection.id, found)
        save_results(cfg, selection, machine)


def save_results(cfg: Config, selection: corpus.Selection, machine: dict[str, Any]) -> None:
    """results.json's ``scale`` section, rewritten from every stage's saved state."""
    states = {
        name: state
        for name in ("single", "cluster", "vectors", "runs")
        if (state := _state(cfg, name, selection.id))
    }
    info = {
        "packages": selection.packages,
        "composition": selection.composition,
        "documents": selection.documents,
        "chunks_counted": selection.chunks,
        "queries": len(selection.queries),
        "query_examples": selection.queries[:6],
        "selection": selection.id,
        "max_chunks_asked": cfg.max_chunks,
        "es_heap": cfg.es_heap,
        # Each stage's time over all its runs (a topology's may span several).
        "stage_seconds": {
            "corpus": selection.prepare_s,
            **{name: state["stage_s"] for name, state in states.items() if "stage_s" in state},
        },
        **machine,
    }
    report.save("scale", figures(states, info), {"how": how(cfg)})


def how(cfg: Config) -> str:
    """How every figure of the section was measured, with this run's settings."""
    return " ".join(
        f"""Corpus: Debian's documentation packages (apt-get download, dpkg-deb -x; manual
        pages rendered to HTML by mandoc; each HTML page's main element only), every page
        counted in chunks by MyAIServ's own extractor and chunker; pages taken in a fixed
        pseudo-random order until {cfg.max_chunks:,} chunks, {cfg.queries} pages held out
        to give the queries (a manual page's one-line description, else the page's title).
        Each topology is a private stack (`myaiserv stack up --dir`: Elasticsearch with a
        {cfg.es_heap} heap per node, PostgreSQL, Redis), never the shared one. The corpus
        goes in in portions (a checkpoint each, cut at every measuring point and every
        {cfg.portion_chunks:,} chunks), each stored by `myaiserv ingest --no-index` while
        one `myaiserv indexer run` drains the outbox. Ingest chunks/s: chunks searchable /
        the ingest clock (every portion from the start of `myaiserv ingest` until its last
        outbox row is settled); over time and by quarter, the indexer's model's own count of
        chunks embedded (the indexer makes up to 512 documents searchable at once). The
        single node embeds every chunk; the cluster embeds its first
        {cfg.cluster_cold_chunks:,} chunks itself (its end-to-end figure) and then takes the
        single node's vectors from its embedding cache, loaded from what the single node's
        indexer cached (its cached figure), so the corpus is embedded once: Elasticsearch
        does the same work either way, and its disk, heap, CPU and search figures are the
        cluster's own. Disk: the documents index's store (all copies, and primaries); heap:
        the slope against the chunks of the nodes' live heap, read right after a full
        collection forced with `jcmd GC.class_histogram` after each portion; CPU: the
        processes' own user + system time (Elasticsearch's from its nodes' pid files, the
        storing `myaiserv ingest`'s as its parent sees that child alone); peak RSS: each
        process's own VmHWM (the storer's from wait4). Searches at each size: one API
        process, one client, {cfg.rounds} rounds over the queries; per round the API's
        Redis database flushed, hybrid (the default) paired query by query with the direct
        client (the query embedding and the same bm25 and kNN bodies in one `_msearch`,
        which goes first alternating), the same hybrid queries again (cached pages), then
        bm25 and vector after a flush each; client time unless marked server time; p50 and
        p99 pool the rounds, the spread is the lowest and highest per-round p50. Recall@10:
        the kNN search the API sends (same body, k = the rank window) against exact nearest
        neighbours by numpy over every vector in the index. Vector index options: the same
        vectors bulk-indexed into one fresh one-shard index per option (bench/vectors.py);
        memory = the index's off-heap vector files (vec: floats, vex: graph, veq/veb:
        quantised), what kNN search reads = graph + the quantised copy (the floats where
        there is none). Runs: {cfg.runs:,} runs from bench/console.py's generator (started
        over 60 days, created_at set to the start, inputs and outputs from
        {cfg.run_texts:,} pairs of CISI texts), one indexer, then one API process, one
        client, {cfg.rounds} rounds of text searches, filtered listings and the console
        overview's aggregations (7, 30 and 90 days), server time.""".split()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stages", help=f"comma-separated, of {','.join(STAGES)} (all by default)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.stages:
        env["SCALE_STAGES"] = args.stages
    asyncio.run(run_stages(Config.from_env(env)))


if __name__ == "__main__":
    main()
