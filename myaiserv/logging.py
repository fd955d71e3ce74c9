"""Structured logs: JSON lines when stderr is not a terminal, readable columns when it is.

The standard library's loggers (uvicorn, litestar, sqlalchemy, elasticsearch) are routed
through the same processors, so one process writes one format. Every line is scrubbed of
registered secrets and of the credentials of any URL in it (``scheme://user:password@``),
in messages, values and tracebacks alike. Lines written inside a traced request or job
carry its ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog

from myaiserv.tracing.context import current_ids

# Values that must never reach a log line (provider API keys, once read); per process.
_SECRETS: set[str] = set()
REDACTED = "[REDACTED]"
# The userinfo of a URL: "user:password@" (the password redacted) or "token@" (all of it).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^\s/?#@]+)@")


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from every log line this process writes from now on."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def register_url_credentials(urls: Iterable[str]) -> None:
    """Scrub the passwords of these URLs (DATABASE_URL, REDIS_URL, ...) even where one
    appears outside its URL (a driver's message)."""
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            register_secret(password)
            register_secret(unquote(password))


def _userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match["info"].partition(":")
    return f"{match['scheme']}{user}:{REDACTED}@" if colon else f"{match['scheme']}{REDACTED}@"


def redact(text: str) -> str:
    """``text`` without registered secrets or URL credentials."""
    if "@" in text:
        text = _USERINFO.sub(_userinfo, text)
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def _redact_secrets(_: object, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    for key, value in event_dict.items():
        event_dict[key] = _redacted(value)
    return event_dict


def _trace_ids(_: object, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """The current span's trace and span ids (inside a request or job that tracing
    follows), so a log line leads to its trace."""
    ids = current_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    _trace_ids,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(
    level: str = "INFO", *, json_logs: bool | None = None, urls: Iterable[str] = ()
) -> None:
    """One format for the process; ``urls``: the settings' URLs, whose passwords are
    scrubbed wherever they appear."""
    register_url_credentials(urls)
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Client libraries log every request at INFO; keep that for DEBUG runs.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("elastic_transport", "elasticsearch", "httpx", "sqlalchemy.engine"):
        logging.getLogger(name).setLevel(quiet)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
