"""A snapshot repository's files, copied: into a backup folder, so that the folder alone
can be restored anywhere, and from there into the nodes' snapshot folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def copy_repository(src: Path, dst: Path, *, owner: tuple[int, int] | None = None) -> None:
    """Copy a snapshot repository. Data blobs (under ``indices/``: written once, never
    changed) are hard-linked where the filesystem allows; the rest (``index-N``,
    ``index.latest``: small, and rewritten by later snapshots) is copied."""
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        target = dst / rel
        target.mkdir(parents=True, exist_ok=True)
        if owner:
            os.chown(target, *owner)
        for name in files:
            source, dest = Path(root) / name, target / name
            if rel.parts[:1] == ("indices",):
                try:
                    os.link(source, dest)
                    continue
                except OSError:
                    pass
            shutil.copy2(source, dest)
            if owner:
                os.chown(dest, *owner)
