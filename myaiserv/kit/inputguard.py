"""Refuse, before anything parses them, requests no handler can store or parse safely:
a query string with a NUL character (PostgreSQL text cannot hold one), a JSON body that
is not UTF-8, or one nested deeper than a limit. Each is a 4xx naming the part at fault.

A decoder recursing through ``[[[[...]]]]`` runs out of stack (Python's recursion limit,
~1000 levels) and the error would surface as a 500; a legitimate request to this API
never nests more than a handful of levels. The scan is linear: strings are cut out
(their brackets do not count), the remaining brackets become +1/-1 and their running sum
is the depth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl

import numpy as np
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPRequestEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from myaiserv.problems import PROBLEM_JSON

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: fast
_OPEN, _CLOSE = b"[{", b"]}"
_KEEP = bytes(set(range(256)) - set(_OPEN + _CLOSE))
_STEP = bytes.maketrans(_OPEN + _CLOSE, b"\x01\x01\xff\xff")


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in ``body`` (0 for a scalar)."""
    brackets = _STRING.sub(b"", body).translate(None, _KEEP)
    if not brackets:
        return 0
    steps = np.frombuffer(brackets.translate(_STEP), dtype=np.int8).astype(np.int32)
    return int(np.cumsum(steps).max())


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


def _nul_parameter(query_string: bytes) -> str | None:
    """The name of a query parameter whose value holds a NUL, if any."""
    if b"%00" not in query_string.lower() and b"\x00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in value or "\x00" in name:
            return name.replace("\x00", "") or "query"
    return "query"


# An ASGI middleware as Litestar takes it: a function of the app it wraps.
Wrapper = Callable[[ASGIApp], ASGIApp]


def input_guard(max_depth: int, max_bytes: int) -> Wrapper:
    """ASGI middleware: problem+json naming the part for a NUL in the query string (422),
    a JSON body that is not UTF-8 or nesting deeper than ``max_depth`` (400). Bodies over
    ``max_bytes`` pass through unread (the app answers 413)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            bad = _nul_parameter(scope.get("query_string", b""))
            if bad is not None:
                # Well-formed but unstorable: 422, as for a NUL in a body's field.
                await _refuse(scope, send, bad, "contains a NUL character", status=422)
                return
            if not _is_json(scope):
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    # The client left: let the app see it as it would have.
                    await app(scope, _replay([], message, receive), send)
                    return
                chunk = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
                more = message.get("more_body", False)
                if size > max_bytes:
                    break
            body = b"".join(chunks)
            if not more:
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    await _refuse(scope, send, "body", f"is not UTF-8 (byte {exc.start})")
                    return
                if json_depth(body) > max_depth:
                    await _refuse(
                        scope, send, "body", f"JSON nested deeper than {max_depth} levels"
                    )
                    return
            first: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": more}
            await app(scope, _replay([first], None, receive), send)

        return wrapped

    return middleware


def _replay(
    messages: list[ReceiveMessage], then: ReceiveMessage | None, receive: Receive
) -> Receive:
    queue = [*messages, *([then] if then else [])]

    async def replayed() -> ReceiveMessage:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed


async def _refuse(scope: Scope, send: Send, field: str, message: str, *, status: int = 400) -> None:
    detail = f"{field}: {message}"
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Invalid request" if status == 400 else "Invalid input",
            "status": status,
            "detail": detail,
            "instance": scope.get("path", ""),
            "errors": [{"field": field, "message": message}],
        }
    ).encode()
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
