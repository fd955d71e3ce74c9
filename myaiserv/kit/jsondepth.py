"""Refuse JSON bodies nested deeper than a limit before anything parses them.

A decoder recursing through ``[[[[...]]]]`` runs out of stack (Python's recursion limit,
~1000 levels) and the error would surface as a 500; a legitimate request to this API
never nests more than a handful of levels. The scan is linear: strings are cut out
(their brackets do not count), the remaining brackets become +1/-1 and their running sum
is the depth.
"""

from __future__ import annotations

import json
import re

import numpy as np
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from myaiserv.errors import PROBLEM_JSON

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


def json_depth_limit(max_depth: int, max_bytes: int):
    """ASGI middleware: 400 problem+json naming the body when it nests deeper than
    ``max_depth``. Bodies over ``max_bytes`` pass through (the app answers 413)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not _is_json(scope):
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
            if not more and json_depth(body) > max_depth:
                await _refuse(scope, send, max_depth)
                return
            first: Message = {"type": "http.request", "body": body, "more_body": more}
            await app(scope, _replay([first], None, receive), send)

        return wrapped

    return middleware


def _replay(messages: list[Message], then: Message | None, receive: Receive) -> Receive:
    queue = [*messages, *([then] if then else [])]

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed


async def _refuse(scope: Scope, send: Send, max_depth: int) -> None:
    detail = f"body: JSON nested deeper than {max_depth} levels"
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Invalid request",
            "status": 400,
            "detail": detail,
            "instance": scope.get("path", ""),
            "errors": [{"field": "body", "message": detail[6:]}],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
