"""A corpus of hostile inputs, sent to every text field of the API by ``probe``.

Each value goes into one field of an otherwise valid request. The API may accept it or
refuse it (4xx); what it may never do is fail (5xx), hang, or leak its internals (stack
traces, SQL, Elasticsearch errors) in the answer. Raw-byte cases (invalid UTF-8, JSON
nested thousands deep) and header injection go below the JSON layer.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

HUGE = 1_100_000  # past most string limits (8000-char queries, 1 MB fields)

STRINGS: dict[str, str] = {
    "es_query_syntax": 'title:(a OR b) AND text:* NOT "x" ~2 ^10 [a TO z] /re.*/',
    "es_json_dsl": '{"query": {"match_all": {}}, "script": {"source": "1"}}',
    "lucene_specials": '+ - && || ! ( ) { } [ ] ^ " ~ * ? : \\ /',
    "wildcards": "*?*?**",
    "sql_injection": "'; DROP TABLE documents; -- \" OR 1=1 --",
    "html_script": "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "null_byte": "before\x00after",
    "control_chars": "".join(chr(c) for c in range(1, 32)),
    "rtl_override": "\u202eevil\u202c normal",
    "zero_width": "a\u200bb\u200cc\u200dd\ufeff",
    "combining": "e" + "\u0301" * 500,
    "emoji_zwj": "\U0001f469\u200d\U0001f469\u200d\U0001f467" * 50,
    "astral": "\U0001d518\U0001d52b\U0001d526 \U0001f9ea \U0010ffff",
    "nfd": "cafe\u0301 re\u0301sume\u0301",
    "long_word": "x" * 40_000,
    "huge": "lorem ipsum " * (HUGE // 12),
    "empty": "",
    "whitespace": " \t\n\r ",
    "format_string": "{0} {question} {context} %s %n {{}} ${jndi:ldap://x}",
    "path_traversal": "../../../../etc/passwd",
    "percent_encoded": "%00%2e%2e%2f%c0%ae",
}
# JSON-level oddities that are not strings.
VALUES: dict[str, Any] = {
    "number_huge": 10**40,
    "number_negative": -1,
    "float_exponent": 1e308,
    "boolean": True,
    "null": None,
    "list": ["a", "b"],
    "object": {"$where": "1"},
}
# Raw bodies (not producible by a JSON encoder).
RAW_BODIES: dict[str, bytes] = {
    "invalid_utf8": b'{"text": "\xff\xfe\xc3\x28 bad"}',
    "lone_surrogate": b'{"text": "\\ud800 lone"}',
    "deep_json": b'{"text": "x", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "truncated": b'{"text": "unterminated',
    "not_json": b"\x00\x01\x02 not json",
    "nan": b'{"text": "x", "metadata": {"a": NaN}}',
}
LEAK_PATTERNS = re.compile(
    r"Traceback|File \"/|sqlalchemy|asyncpg|psycopg|elastic_transport|"
    r"ApiError\(|search_phase_execution|SELECT .* FROM|Exception:|\.py\", line",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Target:
    """One text field of one endpoint: ``build(value)`` returns (method, url, json body)."""

    name: str
    build: Callable[[Any], tuple[str, str, Any]]


@dataclass
class ProbeResult:
    tried: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # 5xx, hangs, leaks


def _chat(value: Any) -> tuple[str, str, Any]:
    return (
        "POST",
        "/v1/chat/completions",
        {"model": "myaiserv-rag", "messages": [{"role": "user", "content": value}]},
    )


def targets(ids: dict[str, str]) -> list[Target]:
    """Every text field, given ids of records of the probing tenant (``document``,
    ``conversation``, ``prompt``, ``run``)."""
    doc, conv, prompt, run = ids["document"], ids["conversation"], ids["prompt"], ids["run"]
    return [
        Target("documents.text", lambda v: ("POST", "/v1/documents", {"text": v})),
        Target("documents.title", lambda v: ("POST", "/v1/documents", {"text": "t", "title": v})),
        Target("documents.source", lambda v: ("POST", "/v1/documents", {"text": "t", "source": v})),
        Target("documents.tags", lambda v: ("POST", "/v1/documents", {"text": "t", "tags": [v]})),
        Target(
            "documents.metadata",
            lambda v: ("POST", "/v1/documents", {"text": "t", "metadata": {"k": v, "v": "x"}}),
        ),
        Target(
            "documents.batch",
            lambda v: ("POST", "/v1/documents/batch", {"documents": [{"text": v}]}),
        ),
        Target("documents.patch", lambda v: ("PATCH", f"/v1/documents/{doc}", {"title": v})),
        Target("documents.list.cursor", lambda v: ("GET", _q("/v1/documents", cursor=v), None)),
        Target("documents.list.tag", lambda v: ("GET", _q("/v1/documents", tag=v), None)),
        Target("search.query", lambda v: ("POST", "/v1/search", {"query": v})),
        Target("search.query.bm25", lambda v: ("POST", "/v1/search", {"query": v, "mode": "bm25"})),
        Target(
            "search.filters.tags",
            lambda v: ("POST", "/v1/search", {"query": "x", "filters": {"tags": [v]}}),
        ),
        Target(
            "search.filters.metadata",
            lambda v: (
                "POST",
                "/v1/search",
                {"query": "x", "filters": {"metadata": {str(v): "x"}}},
            ),
        ),
        Target("search.facets", lambda v: ("POST", "/v1/search", {"query": "x", "facets": [v]})),
        Target("search.cursor", lambda v: ("POST", "/v1/search", {"query": "x", "cursor": v})),
        Target("search.fields", lambda v: ("POST", "/v1/search", {"query": "x", "fields": [v]})),
        Target("runs.search.query", lambda v: ("POST", "/v1/runs/search", {"query": v})),
        Target(
            "runs.search.model",
            lambda v: ("POST", "/v1/runs/search", {"filters": {"model": [v]}}),
        ),
        Target(
            "runs.create.input",
            lambda v: (
                "POST",
                "/v1/runs",
                {"provider": "p", "model": "m", "input": v, "status": "ok"},
            ),
        ),
        Target("runs.patch.output", lambda v: ("PATCH", f"/v1/runs/{run}", {"output": v})),
        Target("prompts.name", lambda v: ("POST", "/v1/prompts", {"name": v, "template": "t"})),
        Target(
            "prompts.template",
            lambda v: ("POST", "/v1/prompts", {"name": f"p{uuid.uuid4().hex[:8]}", "template": v}),
        ),
        Target("prompts.by_name", lambda v: ("GET", "/v1/prompts/by-name/" + _path(v), None)),
        Target(
            "prompts.render",
            lambda v: ("POST", f"/v1/prompts/{prompt}/render", {"variables": {"question": v}}),
        ),
        Target(
            "prompts.label",
            lambda v: ("PUT", f"/v1/prompts/{prompt}/labels/" + _path(v), {"version": 1}),
        ),
        Target("conversations.title", lambda v: ("POST", "/v1/conversations", {"title": v})),
        Target(
            "conversations.message",
            lambda v: (
                "POST",
                f"/v1/conversations/{conv}/messages",
                {"role": "user", "content": v},
            ),
        ),
        Target("chat.content", _chat),
        Target(
            "chat.model",
            lambda v: ("POST", "/v1/chat/completions", {"model": v, "messages": []}),
        ),
        Target("rag.question", lambda v: ("POST", "/v1/rag/answer", {"question": v})),
        Target("embeddings.input", lambda v: ("POST", "/v1/embeddings", {"input": v})),
        Target(
            "admin.keys.name", lambda v: ("POST", "/v1/admin/keys", {"name": v, "scopes": ["read"]})
        ),
        Target("admin.audit.action", lambda v: ("GET", _q("/v1/admin/audit", action=v), None)),
        Target("path.document_id", lambda v: ("GET", "/v1/documents/" + _path(v), None)),
    ]


def _q(path: str, **params: Any) -> str:
    from urllib.parse import urlencode

    # Cut to 2000 characters: longer URLs are refused by every proxy before us.
    return f"{path}?{urlencode({k: str(v)[:2000] for k, v in params.items()})}"


def _path(value: Any) -> str:
    from urllib.parse import quote

    return quote(str(value)[:2000], safe="")


def _check(result: ProbeResult, name: str, resp: httpx.Response) -> None:
    result.tried += 1
    result.by_status[resp.status_code] = result.by_status.get(resp.status_code, 0) + 1
    if resp.status_code >= 500:
        result.failures.append(f"{name}: {resp.status_code} {resp.text[:200]}")
    elif LEAK_PATTERNS.search(resp.text[:20_000]):
        result.failures.append(f"{name}: internals in the answer: {resp.text[:200]}")


async def probe(http: httpx.AsyncClient, ids: dict[str, str]) -> ProbeResult:
    """Send every hostile value to every target (sequentially: this is about correctness,
    not load), then the raw bodies and header injections."""
    result = ProbeResult()
    cases = [*STRINGS.items(), *VALUES.items()]
    for target in targets(ids):
        for case, value in cases:
            method, url, body = target.build(value)
            try:
                resp = await http.request(method, url, json=body)
            except httpx.TimeoutException:
                result.tried += 1
                result.failures.append(f"{target.name}/{case}: no answer (timeout)")
                continue
            _check(result, f"{target.name}/{case}", resp)
    for endpoint in ("/v1/documents", "/v1/search", "/v1/chat/completions", "/v1/runs"):
        for case, raw in RAW_BODIES.items():
            resp = await http.post(
                endpoint, content=raw, headers={"content-type": "application/json"}
            )
            _check(result, f"{endpoint}/{case}", resp)
    await _header_injection(http, result)
    return result


async def _header_injection(http: httpx.AsyncClient, result: ProbeResult) -> None:
    """CR/LF and oddities in headers, written on a raw socket (HTTP clients refuse to
    send them). The server must answer 4xx (or close the connection), and no injected
    header may come back."""
    url = urlsplit(str(http.base_url))
    auth = http.headers.get("authorization", "")
    requests = {
        "crlf_in_api_key": f"X-API-Key: {auth[7:]}\r\nX-Injected: yes\r\n",
        "crlf_in_value": "Authorization: Bearer x\rX-Injected: yes\r\n",
        "nul_in_header": "Authorization: Bearer a\x00b\r\n",
        "non_ascii_header": "Authorization: Bearer ключ\r\n",
        "huge_header": "Authorization: Bearer " + "a" * 70_000 + "\r\n",
        "obs_fold": "Authorization: Bearer x\r\n continued\r\n",
    }
    for case, header in requests.items():
        raw = (
            f"GET /v1/documents HTTP/1.1\r\nHost: {url.hostname}\r\n{header}"
            "Connection: close\r\n\r\n"
        ).encode("utf-8", "surrogateescape")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.hostname, url.port), timeout=5
            )
            writer.write(raw)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(65536), timeout=10)
            writer.close()
        except (OSError, TimeoutError) as exc:
            result.tried += 1
            result.failures.append(f"header/{case}: {type(exc).__name__}")
            continue
        result.tried += 1
        status_line = answer.split(b"\r\n", 1)[0]
        parts = status_line.split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        result.by_status[status] = result.by_status.get(status, 0) + 1
        if status >= 500 or b"x-injected" in answer.lower():
            result.failures.append(f"header/{case}: {status_line[:80]!r}")
        elif status == 200 and case != "crlf_in_api_key":
            result.failures.append(f"header/{case}: accepted a malformed credential")


async def seed(http: httpx.AsyncClient) -> dict[str, str]:
    """Records for the targets that address one (a document, conversation, prompt, run)."""

    async def created(url: str, body: dict[str, Any]) -> str:
        resp = await http.post(url, json=body)
        resp.raise_for_status()
        return str(resp.json()["id"])

    return {
        "document": await created("/v1/documents", {"text": f"seed {uuid.uuid4()}"}),
        "conversation": await created("/v1/conversations", {"title": "seed"}),
        "prompt": await created(
            "/v1/prompts", {"name": f"seed-{uuid.uuid4().hex[:8]}", "template": "Q: {question}"}
        ),
        "run": await created(
            "/v1/runs", {"provider": "p", "model": "m", "input": "seed", "status": "ok"}
        ),
    }
