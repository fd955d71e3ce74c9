"""What tracing costs: uncached search p50 with tracing off, on at ratio 1.0 and at 0.1.

Three API instances (child processes, as deployed) over the CISI index of `bench.search`
(same database, tenant and index prefix; CISI is stored through the API first, deduplicated,
so a re-run indexes nothing new): tracing off (`exporter=none`), on with every trace sampled
(`sample_ratio=1.0`) and on with one in ten (`0.1`), both exporting to the local stack's
Zipkin for real. Each instance has a Redis namespace of its own, so a query cached by one is
still new to the others. Every round flushes Redis and sends every CISI query to all three,
one request at a time, in an order that rotates query by query (each instance goes first,
second and third equally often), so the three see the machine at the same moments. p50 is
the client's time (loopback HTTP included) over all rounds; `overhead_ratio` = p50 on /
p50 off - 1, and its spread is the lowest-highest of the same ratio per round. CPU per
search: the API process's user + system time over the measured rounds (/proc), divided
by the searches; Zipkin's (it shares the machine) divided by the traces it received.
The searches' traces Zipkin received from each instance are counted at the end: the
exporter really exported.
Writes the `tracing` section of bench/results.json and bench/REPORT.md.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx

from bench import report
from bench.common import bench_settings, cpu_seconds, local_stack_config, stack_dir
from bench.search import CISI, DB, PREFIX, REDIS_DB, Timings, cisi_tenant, store_cisi
from myaiserv.cache.client import create_redis_client
from myaiserv.datasets.trec import load_collection
from myaiserv.evaluation.harness import local_api
from myaiserv.evaluation.runner import EvalClient

ROUNDS = 8
# name -> (exporter, sample ratio)
VARIANTS = {"off": ("none", "1.0"), "ratio_1": ("zipkin", "1.0"), "ratio_0_1": ("zipkin", "0.1")}


def zipkin_url() -> str:
    return local_stack_config().zipkin.url


def zipkin_pid() -> int:
    return int((stack_dir() / "zipkin" / "zipkin.pid").read_text())


def variant_env(env: dict[str, str], name: str) -> dict[str, str]:
    exporter, ratio = VARIANTS[name]
    return {
        **env,
        "MYAISERV_REDIS__NAMESPACE": f"{PREFIX}-trace-{name}",
        "MYAISERV_TRACING__EXPORTER": exporter,
        "MYAISERV_TRACING__ENDPOINT": f"{zipkin_url()}/api/v2/spans",
        "MYAISERV_TRACING__SAMPLE_RATIO": ratio,
        "MYAISERV_TRACING__SERVICE_NAME": f"bench-tracing-{name}",
    }


async def traces_received(service: str, since: float) -> int:
    """Searches Zipkin holds a trace of, from ``service`` since ``since`` (epoch seconds)."""
    end_ms = int(time.time() * 1000)
    params = {
        "serviceName": service,
        "spanName": "post /v1/search",
        "limit": 100_000,
        "endTs": end_ms,
        "lookback": end_ms - int(since * 1000),
    }
    async with httpx.AsyncClient(base_url=zipkin_url(), timeout=30) as zipkin:
        resp = await zipkin.get("/api/v2/traces", params=params)
        resp.raise_for_status()
        return len(resp.json())


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    _, key = await cisi_tenant(settings, env)
    collection = load_collection(CISI)
    queries = [query.text for query in collection.queries]
    async with local_api(env) as (url, _):
        client = EvalClient(url, key)
        try:
            await store_cisi(client, collection)
        finally:
            await client.close()

    names = list(VARIANTS)
    started = time.time()
    timings = {name: Timings() for name in names}
    per_round: dict[str, list[float]] = {name: [] for name in names}
    redis = create_redis_client(settings)
    headers = {"Authorization": f"Bearer {key}"}
    async with AsyncExitStack() as stack:
        http = {}
        pids = {}
        for name in names:
            url, api = await stack.enter_async_context(
                local_api(variant_env(env, name), indexer=False)
            )
            pids[name] = api.pid
            http[name] = await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=headers, timeout=60)
            )
        for text_ in queries[:5]:  # warm-up: connections, the model's first calls
            for name in names:
                await Timings().send(http[name], {"query": text_})
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        zipkin_before = cpu_seconds(zipkin_pid())
        for round_ in range(ROUNDS):
            await redis.flushdb()
            this_round = {name: Timings() for name in names}
            for i, text_ in enumerate(queries):
                order = names[i % 3 :] + names[: i % 3]
                for name in order:
                    await this_round[name].send(http[name], {"query": text_})
            for name in names:
                per_round[name].append(statistics.median(this_round[name].client))
                timings[name].client += this_round[name].client
                timings[name].server += this_round[name].server
            print(f"bench: round {round_ + 1}/{ROUNDS}: {per_round}", flush=True)
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        zipkin_cpu = cpu_seconds(zipkin_pid()) - zipkin_before
    await redis.aclose()
    await asyncio.sleep(6)  # the batch exporters' last flush (every 5 s) has landed

    p50 = {name: statistics.median(timings[name].client) for name in names}
    figures: dict[str, Any] = {"queries": len(queries), "rounds": ROUNDS}
    measured = len(queries) * ROUNDS
    for name in names:
        figures[f"{name}_cpu_ms_per_request"] = round(cpu[name] * 1000 / measured, 2)
        figures[f"{name}_p50_ms"] = round(p50[name], 2)
        figures[f"{name}_server_p50_ms"] = round(statistics.median(timings[name].server), 2)
    for name in ("ratio_1", "ratio_0_1"):
        ratios = [on / off - 1 for on, off in zip(per_round[name], per_round["off"], strict=True)]
        figures[f"overhead_ratio_{name}"] = round(p50[name] / p50["off"] - 1, 4)
        figures[f"overhead_ratio_{name}_min"] = round(min(ratios), 4)
        figures[f"overhead_ratio_{name}_max"] = round(max(ratios), 4)
        figures[f"traces_{name}"] = await traces_received(f"bench-tracing-{name}", started)
        figures[f"cpu_overhead_ratio_{name}"] = round(cpu[name] / cpu["off"] - 1, 4)
    # The trace store shares this machine: its CPU per search it received a trace of.
    traced = figures["traces_ratio_1"] + figures["traces_ratio_0_1"]
    figures["zipkin_cpu_ms_per_trace"] = round(zipkin_cpu * 1000 / max(1, traced), 2)
    # Every search made a trace at 1.0 (the warm-up's too); about a tenth of them at 0.1.
    figures["requests_per_variant"] = len(timings["off"].client) + 5
    figures["overhead_ratio"] = figures["overhead_ratio_ratio_1"]
    report.save("tracing", figures, {"how": __doc__.split("\n\n", 1)[1].strip() if __doc__ else ""})
    for name, value in figures.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
