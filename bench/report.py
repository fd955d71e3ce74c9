"""bench/results.json (machine-readable, merged by every benchmark) and bench/REPORT.md
(rendered from it, for people)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.json"
REPORT = BENCH / "REPORT.md"


def machine() -> dict[str, Any]:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
    }


def load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save(section: str, figures: dict[str, Any], method: dict[str, Any]) -> dict[str, Any]:
    """Replace one section of results.json, keep the others, and re-render the report."""
    results = load()
    results[section] = figures
    results.setdefault("_method", {})[section] = method
    results["_machine"] = machine()
    results["_updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    REPORT.write_text(render(results))
    return results


def _ingest(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    target = 0.85
    ok = r["ratio_to_raw_encode"] >= target
    return [
        "## Ingest (CISI, end to end)",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| documents | {r['documents']} |",
        f"| chunks | {r['chunks']} |",
        f"| end-to-end docs/s (API + indexer) | {r['docs_per_s']:.1f} |",
        f"| end-to-end chunks/s | {r['chunks_per_s']:.1f} |",
        f"| raw `SentenceTransformer.encode` chunks/s (the limit) | "
        f"{r['raw_encode_chunks_per_s']:.1f} |",
        f"| ratio to raw encode (target >= {target:.0%}) | {r['ratio_to_raw_encode']:.1%} "
        f"({'met' if ok else 'missed'}; rounds ranged {r.get('ratio_min', 0):.1%} to "
        f"{r.get('ratio_max', 0):.1%}) |",
        f"| indexer worker peak RSS | {r['worker_peak_rss_mb']:.0f} MB |",
        f"| API peak RSS | {r.get('api_peak_rss_mb', 0):.0f} MB |",
        "",
        f"How: {method.get('how', '')}",
        "",
    ]


def _relevance(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    lines = ["## Relevance", ""]
    for name, modes in r.items():
        if not isinstance(modes, dict):
            continue
        lines += [
            f"{name.upper()}, {r.get('queries', '?')} judged queries:",
            "",
            "| mode | nDCG@10 | MAP | Recall@100 |",
            "| --- | --- | --- | --- |",
        ]
        order = ["bm25", "vector", "hybrid"]
        for mode, m in sorted(
            modes.items(), key=lambda i: order.index(i[0]) if i[0] in order else 9
        ):
            lines.append(
                f"| {mode} | {m['ndcg@10']:.4f} | {m['map']:.4f} | {m['recall@100']:.4f} |"
            )
        lines.append("")
    return [*lines, f"How: {method.get('how', '')}", ""]


def _search(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    ratio = r["uncached_to_direct_p50"]
    cached_ok = r["cached_p50_ms"] <= 5
    return [
        "## Search latency (CISI, hybrid)",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| `/v1/search` hybrid uncached p50 / p99 (client) | {r['hybrid_uncached_p50_ms']:.1f} / "
        f"{r['hybrid_uncached_p99_ms']:.1f} ms |",
        f"| same, server time p50 | {r['hybrid_uncached_server_p50_ms']:.1f} ms |",
        f"| direct: embedding + elasticsearch-py `_msearch` p50 / p99 | {r['direct_p50_ms']:.1f}"
        f" / {r['direct_p99_ms']:.1f} ms |",
        f"| uncached p50 / direct p50 (target <= 1.5) | {ratio:.2f} "
        f"({'met' if ratio <= 1.5 else 'missed'}) |",
        f"| cached p50 server time (target <= 5 ms) | {r['cached_p50_ms']:.2f} ms "
        f"({'met' if cached_ok else 'missed'}; client {r['cached_client_p50_ms']:.2f} ms) |",
        f"| hybrid uncached req/s ({r['concurrency']} clients) | {r['hybrid_uncached_rps']:.1f} |",
        f"| cached req/s ({r['concurrency']} clients) | {r['cached_rps']:.1f} |",
        "",
        f"How: {method.get('how', '')}",
        "",
    ]


def _scale(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    return [
        "## Scale-out (1 vs 3 API instances behind nginx)",
        "",
        f"| `/v1/search` req/s, {r['clients']} clients | 1 instance | 3 instances | factor |",
        "| --- | --- | --- | --- |",
        f"| uncached | {r['uncached_rps_1']:.1f} | {r['uncached_rps_3']:.1f} | "
        f"{r['uncached_factor']:.2f} |",
        f"| cached | {r['cached_rps_1']:.1f} | {r['cached_rps_3']:.1f} | "
        f"{r['cached_factor']:.2f} |",
        "",
        f"How: {method.get('how', '')}",
        "",
    ]


def _load(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    lines = [
        "## Load (locust, read/write mix, loopback)",
        "",
        f"{r['users']} users, {r['duration_s']} s per run; search 6 : write 2 : read 1 : chat 1.",
        "",
        "| instances | req/s | p50 ms | p99 ms | errors (non-429) | 429 | acknowledged "
        "writes | stored | indexed | lost | backlog indexed after (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in r["runs"].values():
        lines.append(
            f"| {run['instances']} | {run['rps']:.1f} | {run['p50_ms']:.0f} | "
            f"{run['p99_ms']:.0f} | {run['errors']} | {run['rate_limited_429']} | "
            f"{run['acknowledged_writes']} | {run['stored_writes']} | {run['indexed_writes']} | "
            f"{run['lost_writes']} | {run.get('backlog_indexed_after_load_s', '')} |"
        )
    return [*lines, "", f"How: {method.get('how', '')}", ""]


def _reliability(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    lines = [
        "## Faults under load",
        "",
        "| dependency stopped | requests | answers during the outage | unexpected answers | "
        "recovered | survived |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in r["faults_detail"]:
        during = ", ".join(f"{k}: {v}" for k, v in f["during_outage"].items())
        lines.append(
            f"| {f['dependency']} ({f['outage_s']:g} s) | {f['requests']} | {during} | "
            f"{f['unexpected_answers']} | {f['recovered']} | {f['survived']} |"
        )
    lines += [
        "",
        f"Acknowledged writes {r['acknowledged_writes']}, in PostgreSQL {r['stored_writes']}, "
        f"searchable {r['indexed_writes']}, lost {r['lost_writes']}.",
        "",
        f"How: {method.get('how', '')}",
        "",
    ]
    return lines


def _security(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    return [
        "## Security",
        "",
        "| check | tried | failures |",
        "| --- | --- | --- |",
        f"| schemathesis (OpenAPI, authenticated) | {r['schemathesis_cases']} cases | "
        f"{r['schemathesis_5xx']} 5xx, {sum(r['schemathesis_failures'].values())} in all |",
        f"| hostile inputs (every text field, raw bodies, headers) | "
        f"{r['hostile_inputs_tried']} | {len(r['hostile_input_failures'])} |",
        f"| cross-tenant sweep (two tenants, identical data) | {r['cross_tenant_checks']} "
        f"checks | {r['cross_tenant_leaks']} leaks |",
        "",
        f"How: {method.get('how', '')}",
        "",
    ]


def _peers(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    lines = [
        "## Peers (LangChain, Haystack) on the same cluster, model and chunks",
        "",
        f"{r['chunks']} CISI chunks, {r['queries']} judged queries.",
        "",
        "| system | ingest chunks/s | retriever | nDCG@10 | MAP | Recall@100 | p50 ms (k=10) "
        "| p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes: list[str] = []
    for peer in ("langchain", "haystack"):
        p = r.get(peer)
        if not p:
            continue
        if "error" in p:
            lines.append(f"| {peer} | failed: {p['error'][:80]} | | | | | | |")
            continue
        for name, rel in p["relevance"].items():
            lat = p["latency"][name]
            lines.append(
                f"| {peer} | {p['ingest_chunks_per_s']:.1f} | {name} | {rel['ndcg@10']:.4f} | "
                f"{rel['map']:.4f} | {rel['recall@100']:.4f} | {lat['p50_ms']:.1f} | "
                f"{lat['p99_ms']:.1f} |"
            )
        notes += [f"- {peer}: {note}" for note in p.get("notes", [])]
    return [*lines, "", *notes, "", f"How: {method.get('how', '')}", ""]


RENDERERS = {
    "ingest": _ingest,
    "relevance": _relevance,
    "search": _search,
    "scale": _scale,
    "load": _load,
    "reliability": _reliability,
    "security": _security,
    "peers": _peers,
}


def render(results: dict[str, Any]) -> str:
    m = results.get("_machine", {})
    lines = [
        "# MyAIServ benchmarks",
        "",
        f"Written by `make bench` ({results.get('_updated', '')}, commit "
        f"{m.get('commit', '?')}) on {m.get('cores', '?')} cores ({m.get('cpu', '?')}), "
        f"Python {m.get('python', '?')}. Figures are also in `bench/results.json`.",
        "",
    ]
    for section, renderer in RENDERERS.items():
        if section in results:
            lines += renderer(results[section], results.get("_method", {}).get(section, {}))
    return "\n".join(lines)
