"""Process plumbing for the local stack: the unprivileged service user, pids, ports, waits.

Elasticsearch and PostgreSQL both refuse to run as root. When the stack is managed by
root (CI, a fresh container), every server runs as a dedicated system user instead, and
the folders it writes are handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

SERVICE_USER = "myaiserv"


class StackError(RuntimeError):
    """A stack operation failed in a way the operator can act on; the message says how."""


class Identity(TypedDict, total=False):
    """Who a child process runs as (``subprocess.Popen``'s keywords)."""

    user: int
    group: int
    extra_groups: list[int]


@dataclass(frozen=True)
class RunAs:
    """Who the servers run as: the current user, or ``SERVICE_USER`` when we are root."""

    name: str
    uid: int
    gid: int

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()

    def popen_kwargs(self) -> Identity:
        if self.is_current:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, *paths: Path) -> None:
        """Hand folders (recursively) to the service user."""
        if self.is_current:
            return
        for top in paths:
            os.chown(top, self.uid, self.gid)
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)


def service_user() -> RunAs:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise StackError(
                f"running as root and there is no '{SERVICE_USER}' user to run the servers as; "
                "create one (useradd --system) or run the stack as an ordinary user"
            ) from None
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
        )
        entry = pwd.getpwnam(SERVICE_USER)
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def ensure_traversable(path: Path, run_as: RunAs) -> list[Path]:
    """The service user must reach the stack folder through its parents.

    As root, a parent that others cannot search (e.g. a clone under /root, mode 700) gets
    the search bit for others, nothing more: no listing, no reading. Returns what changed.
    """
    if run_as.is_current:
        return []
    changed: list[Path] = []
    for parent in [path.resolve(), *path.resolve().parents]:
        mode = parent.stat().st_mode
        if mode & 0o001:
            continue
        if os.geteuid() != 0:
            raise StackError(
                f"{parent} is not searchable by other users (mode {oct(mode & 0o777)}); the "
                f"servers run as '{run_as.name}' and need it: chmod o+x {parent}, or choose "
                "another --dir"
            )
        os.chmod(parent, (mode & 0o7777) | 0o001)
        changed.append(parent)
    return changed


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    kwargs = run_as.popen_kwargs() if run_as else {}
    proc = subprocess.run(
        [str(a) for a in args],
        env=dict(env) if env is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
    if check and proc.returncode != 0:
        raise StackError(
            f"{Path(str(args[0])).name} exited with {proc.returncode}: "
            f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return proc


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo += children.get(current, [])
    return tree


def signal_tree(pid: int | None, sig: signal.Signals) -> None:
    """Send ``sig`` to ``pid`` and every descendant: SIGSTOP freezes a server (its kernel
    still accepts connections, nothing answers), SIGCONT thaws it. Parents are signalled
    first, so a stopped parent forks no child that escapes."""
    if not pid_alive(pid):
        raise StackError(f"process {pid} is not running")
    assert pid is not None
    for member in process_tree(pid):
        try:
            os.kill(member, sig)
        except ProcessLookupError:
            continue


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.5, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def terminate(pid: int | None, *, timeout: float = 60, what: str) -> None:
    """SIGTERM, wait, then SIGKILL: servers get the chance to shut down cleanly."""
    if not pid_alive(pid):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(
            lambda: not pid_alive(pid), timeout=timeout, interval=0.2, what=f"{what} to stop"
        )
    except StackError:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), timeout=10, interval=0.2, what=f"{what} to die")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def ensure_port_free(port: int, *, what: str, option: str) -> None:
    """A port held by someone else (another stack, a system service) fails clearly, early."""
    if port_open(port):
        raise StackError(
            f"port {port} for {what} is already in use by another process; stop it or pick "
            f"another port with {option}"
        )
