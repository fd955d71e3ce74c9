"""Where PostgreSQL's programs are on this machine. Backups need the client tools
(pg_dump, pg_restore), the local development stack a server (postgres, pg_ctl, initdb);
both look in the same places, and each says in its own error what to install."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def find_bindir(tools: tuple[str, ...]) -> Path | None:
    """The first folder holding every one of ``tools``: $MYAISERV_PG_BINDIR, then Debian's
    /usr/lib/postgresql/N/bin (newest N first), then the folder of ``tools[0]`` on PATH;
    None when no folder holds them all."""
    candidates: list[Path] = []
    if os.environ.get("MYAISERV_PG_BINDIR"):
        candidates.append(Path(os.environ["MYAISERV_PG_BINDIR"]))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if re.fullmatch(r"\d+", p.name)]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True)]
    on_path = shutil.which(tools[0])
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in tools):
            return bindir
    return None
