"""A local server that speaks OpenAI's chat-completions wire protocol, for tests that need
a real HTTP upstream (the official client, SSE parsing, status codes, dropped connections)
without a network or a key.

The requested model picks the behaviour, so a test scripts failures by naming a model:

- ``echo``: ``"Echo: <last user message> [1]"``; streamed one word per chunk; honours
  ``max_tokens`` (counted in words) with ``finish_reason="length"``.
- ``rate-limited``: 429 with ``Retry-After`` (``retry_after``; ``retry_after_ms`` adds
  OpenAI's ``retry-after-ms``) and an OpenAI-style error body.
- ``server-error``: 500. ``bad-request``: 400. Any unknown model: 404 ``model_not_found``.
- ``slow``: answers like ``echo`` after ``slow_s`` seconds (or stops when the client
  hangs up), to trip a client timeout.
- ``flaky``: the first ``flaky_failures`` requests get 500, later ones answer like ``echo``.
- ``broken-stream``: streams two content chunks, then drops the connection (no [DONE]).
- ``no-finish``: streams the answer and ``[DONE]`` but never a finish reason.
- ``malformed``: 200 with a JSON body that is not a chat completion.
- ``leaky-auth``: 401 whose message repeats the bearer token it was sent (some servers
  do), to check that we never pass a provider key on.

Every request body received is appended to ``requests`` (and its headers to
``request_headers``). Only loopback: it binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Self

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODELS = (
    "echo",
    "rate-limited",
    "server-error",
    "bad-request",
    "slow",
    "flaky",
    "broken-stream",
    "no-finish",
    "malformed",
    "leaky-auth",
)
CREATED = 1_700_000_000


class FakeOpenAIServer:
    """``with FakeOpenAIServer() as server:`` (or ``start()`` / ``stop()``); point a client
    at ``server.url``. Attributes may be changed between requests to script behaviour."""

    def __init__(
        self,
        *,
        flaky_failures: int = 2,
        slow_s: float = 10.0,
        retry_after: str | None = "1",
        retry_after_ms: str | None = None,
    ) -> None:
        self.flaky_failures = flaky_failures
        self.slow_s = slow_s
        self.retry_after = retry_after
        self.retry_after_ms = retry_after_ms
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self._flaky_seen = 0
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"

    def models_requested(self, model: str) -> int:
        return sum(1 for body in self.requests if body.get("model") == model)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self,
            http="h11",
            lifespan="off",
            log_config=None,  # leave the test process's logging alone
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._socket = sock
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the ASGI app ----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"].rstrip("/")
        if method == "GET" and path == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "fake"} for m in MODELS
            ]
            await _json(send, 200, {"object": "list", "data": data})
            return
        if method != "POST" or path != "/v1/chat/completions":
            await _error(send, 404, f"no route {method} {path}", "not_found")
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw)
        except ValueError:
            await _error(send, 400, "the body is not JSON", "invalid_json")
            return
        self.requests.append(body)
        self.request_headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self._chat(body, receive, send)

    async def _chat(self, body: dict[str, Any], receive: Receive, send: Send) -> None:
        model = str(body.get("model", ""))
        stream = bool(body.get("stream"))
        if model == "leaky-auth":
            token = self.request_headers[-1].get("authorization", "").removeprefix("Bearer ")
            await _error(send, 401, f"Incorrect API key provided: {token}", "invalid_api_key")
        elif model == "rate-limited":
            headers = {}
            if self.retry_after is not None:
                headers["retry-after"] = self.retry_after
            if self.retry_after_ms is not None:
                headers["retry-after-ms"] = self.retry_after_ms
            await _error(send, 429, "Rate limit reached", "rate_limit_exceeded", headers)
        elif model == "server-error":
            await _error(send, 500, "The server had an error", "server_error")
        elif model == "bad-request":
            await _error(send, 400, "Invalid request", "invalid_request_error")
        elif model == "malformed":
            await _json(send, 200, {"object": "chat.completion", "choices": "nope"})
        elif model == "flaky" and self._flaky_seen < self.flaky_failures:
            self._flaky_seen += 1
            await _error(send, 500, "The server had an error", "server_error")
        elif model not in MODELS:
            await _error(send, 404, f"The model `{model}` does not exist", "model_not_found")
        else:
            if model == "slow":
                await _wait_for_disconnect(receive, self.slow_s)
            text, finish_reason, usage = _answer(body)
            if stream:
                await self._stream(send, body, text, finish_reason, usage)
            else:
                message = {"role": "assistant", "content": text}
                choice = {"index": 0, "message": message, "finish_reason": finish_reason}
                await _json(send, 200, _envelope(body, "chat.completion", [choice], usage))

    async def _stream(
        self,
        send: Send,
        body: dict[str, Any],
        text: str,
        finish_reason: str,
        usage: dict[str, int],
    ) -> None:
        model = body["model"]
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def event(choices: list[dict[str, Any]], chunk_usage: Any = None) -> None:
            chunk = _envelope(body, "chat.completion.chunk", choices, None)
            if include_usage:
                chunk["usage"] = chunk_usage  # null on all but the last, as OpenAI does
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})

        def delta(content: str | None = None, reason: str | None = None) -> dict[str, Any]:
            piece = {} if content is None else {"content": content}
            return {"index": 0, "delta": piece, "logprobs": None, "finish_reason": reason}

        await event([{**delta(""), "delta": {"role": "assistant", "content": ""}}])
        pieces = re.findall(r"\S+\s*", text)
        for n, piece in enumerate(pieces):
            await event([delta(piece)])
            if model == "broken-stream" and n == 1:
                return  # uvicorn closes the connection: no terminating chunk, no [DONE]
        if model != "no-finish":
            await event([delta(reason=finish_reason)])
            if include_usage:
                await event([], usage)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def _answer(body: dict[str, Any]) -> tuple[str, str, dict[str, int]]:
    """The echo answer, its finish reason and usage (tokens counted as words)."""
    messages = body.get("messages") or []
    question = next(
        (str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    words = f"Echo: {question} [1]".split()
    finish_reason = "stop"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and len(words) > max_tokens:
        words, finish_reason = words[:max_tokens], "length"
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": prompt_tokens + len(words),
    }
    return " ".join(words), finish_reason, usage


def _envelope(
    body: dict[str, Any], kind: str, choices: list[dict[str, Any]], usage: Any
) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "id": f"chatcmpl-fake{len(str(body))}",
        "object": kind,
        "created": CREATED,
        "model": body["model"],
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }
    if usage is not None:
        envelope["usage"] = usage
    return envelope


async def _wait_for_disconnect(receive: Receive, seconds: float) -> None:
    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), seconds)


async def _json(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    raw = json.dumps(payload).encode()
    pairs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    pairs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": pairs})
    await send({"type": "http.response.body", "body": raw})


async def _error(
    send: Send, status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> None:
    """An error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = "invalid_request_error" if status < 500 and status != 429 else "server_error"
    if status == 429:
        kind = "requests"
    error = {"message": message, "type": kind, "param": None, "code": code}
    await _json(send, status, {"error": error}, headers)
