"""``REDIS_URL`` read: one server, or a primary that Sentinel names (and moves on failover).

The Sentinel form, after the convention of redis-py's and Celery's users::

    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/<master-name>[/<db>]

Each ``host:port`` is a Sentinel (port 26379 when left out); ``master-name`` is the name
the Sentinels monitor the primary under (``sentinel monitor <name> ...``); ``db`` defaults
to 0. Credentials, percent-encoded, are the Redis servers' (the Sentinels take none).
Standard library only: settings validation uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_FORM = f"{SENTINEL_SCHEME}://host:port[,host:port...]/<master-name>[/<db>]"


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def _address(item: str) -> tuple[str, int]:
    if item.startswith("["):  # [IPv6]:port
        host, _, port = item[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    port = port or str(DEFAULT_SENTINEL_PORT)
    if not host:
        raise ValueError(f"the Sentinel address {item!r} names no host; expected {SENTINEL_FORM}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the Sentinel address {item!r} has a port that is not a number")
    return host, int(port)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The Sentinels, master name, database and credentials; ValueError saying what is
    wrong (never repeating a password)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != SENTINEL_SCHEME:
        raise ValueError(f"not a Sentinel URL; expected {SENTINEL_FORM}")
    if parts.query or parts.fragment:
        raise ValueError(f"a Sentinel URL takes no query or fragment; expected {SENTINEL_FORM}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    items = [item.strip() for item in hosts.split(",")]
    if not hosts or not all(items):
        raise ValueError(f"the URL names no Sentinel (or an empty one); expected {SENTINEL_FORM}")
    path = [segment for segment in parts.path.split("/") if segment]
    if not path:
        raise ValueError(f"the URL names no master; expected {SENTINEL_FORM}")
    if len(path) > 2:
        raise ValueError(f"too many path segments after the Sentinels; expected {SENTINEL_FORM}")
    db = path[1] if len(path) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"the database {db!r} is not a number")
    username, _, password = userinfo.partition(":")
    return SentinelTarget(
        sentinels=tuple(_address(item) for item in items),
        master_name=unquote(path[0]),
        db=int(db),
        username=unquote(username) or None,
        password=unquote(password) or None,
    )
