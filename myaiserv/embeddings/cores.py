"""The machine's cores, shared out among every process on it that embeds in bulk.

API instances, indexers and `myaiserv ingest` each run the model; several on one machine,
each on all its cores, run more threads than cores and thrash (measured on 2 cores: an
ingest indexing beside a running indexer, the two together at ~38% of the encoder's rate).
A fixed share each leaves cores idle whenever the others are idle. So the cores are
leased per batch instead:

- each core is a slot, a file in a folder every such process on the machine opens
  (``embedding.cores_dir``, by default the user's own under the temp folder; in
  containers, a volume they share); a process holds a slot by an exclusive ``flock`` on
  its file, for one batch;
- a batch runs on as many threads as it holds slots: at least one, at most what the
  process may use (``embedding.threads``, 0: every core). One process alone uses every
  core; two busy ones split them or take turns;
- a process takes a gate before the slots and drops it once it holds some, so a process
  that has just run a batch queues behind one already waiting: busy processes alternate
  rather than one starving the other;
- a lock dies with its process (the kernel drops it): a crash leaks no slot. A holder
  that hangs (SIGSTOP) uses no CPU: after ``wait_s`` a batch runs on one thread without a
  slot, with a warning, rather than stall.

A query's single text does not lease (~4 ms on one thread): a search never waits for
another process's batch.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from myaiserv.logging import get_logger

log = get_logger("myaiserv.embeddings.cores")

# Slots are polled while another process holds them: a freed core is noticed within this.
_POLL_MIN_S, _POLL_MAX_S = 0.0005, 0.002


def default_dir() -> Path:
    """The user's own (processes of one deployment run as one user; containers name a
    folder they share)."""
    return Path(tempfile.gettempdir()) / f"myaiserv-cores-{os.getuid()}"


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# What the threads that encode are called for the OS (``top -H``,
# ``/proc/<pid>/task/*/comm``): ``embed`` while one computes a text, else ``embed-idle``.
COMPUTING, IDLE = "embed", "embed-idle"
_PR_SET_NAME = 15
try:
    _libc: ctypes.CDLL | None = (
        ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
    )
except OSError:
    _libc = None


def name_os_thread(name: str) -> None:
    """Name the calling thread for the OS (one system call: cheap enough per text)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


@contextlib.contextmanager
def computing() -> Iterator[None]:
    """The calling thread is ``embed`` for the block, ``embed-idle`` after: so the OS
    shows how many threads compute at once (a test samples it)."""
    name_os_thread(COMPUTING)
    try:
        yield
    finally:
        name_os_thread(IDLE)


@dataclass(frozen=True)
class Lease:
    """What one batch may run on: ``threads`` threads, for the ``slots`` held (none when
    none came free in time, or the folder cannot be used)."""

    slots: tuple[int, ...]
    threads: int
    waited_s: float = 0.0


class CoreSlots:
    """One process's view of the machine's slots; ``lease`` from one thread at a time
    (the model's)."""

    def __init__(self, directory: Path, count: int, *, wait_s: float = 30.0) -> None:
        self.directory = directory
        self.count = max(1, count)
        self.wait_s = wait_s
        self._gate: int | None = None
        self._slots: list[int] = []
        # Held by a lease and by close: the files are not closed under a running batch.
        self._lock = threading.Lock()
        self._unusable = False  # the folder failed once (said once)

    def _open(self) -> int:
        """The gate's descriptor (the files are opened on first use)."""
        if self._gate is not None:
            return self._gate
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._slots = [self._file(f"slot-{i}") for i in range(self.count)]
        self._gate = self._file("gate")
        return self._gate

    def _usable_gate(self) -> int | None:
        try:
            return self._open()
        except OSError as exc:
            if not self._unusable:
                log.warning(
                    "cannot share cores with the machine's other processes: each runs as "
                    "many threads as it may",
                    cores_dir=str(self.directory),
                    error=str(exc),
                )
            self._unusable = True
            return None

    def _file(self, name: str) -> int:
        # Read-only is enough for flock: whoever may read the folder may take part.
        return os.open(self.directory / name, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @contextlib.contextmanager
    def lease(self, wanted: int) -> Iterator[Lease]:
        """Up to ``wanted`` slots (0: every one) for the block, at least one unless none
        came free within ``wait_s``."""
        with self._lock, self._leased(wanted) as lease:
            yield lease

    @contextlib.contextmanager
    def _leased(self, wanted: int) -> Iterator[Lease]:
        wanted = min(wanted or self.count, self.count)
        gate = self._usable_gate()
        if gate is None:
            yield Lease((), wanted)
            return
        started = time.monotonic()
        deadline = started + self.wait_s
        held: list[int] = []
        try:
            if _poll(lambda: _try_lock(gate), deadline):
                try:
                    _poll(lambda: self._take(held, wanted), deadline)
                finally:
                    fcntl.flock(gate, fcntl.LOCK_UN)
            waited = time.monotonic() - started
            if not held:
                log.warning(
                    "no core came free; encoding on one thread without a lease",
                    waited_s=round(waited, 1),
                    cores_dir=str(self.directory),
                )
            yield Lease(tuple(held), max(1, len(held)), waited)
        finally:
            for slot in held:
                fcntl.flock(self._slots[slot], fcntl.LOCK_UN)

    def _take(self, held: list[int], wanted: int) -> bool:
        for i, fd in enumerate(self._slots):
            if len(held) >= wanted:
                break
            if _try_lock(fd):
                held.append(i)
        return bool(held)

    def close(self) -> None:
        with self._lock:
            for fd in [*self._slots, *([self._gate] if self._gate is not None else [])]:
                os.close(fd)
            self._slots, self._gate = [], None


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _poll(attempt: Callable[[], bool], deadline: float) -> bool:
    """Call ``attempt`` until it returns True or the deadline passes."""
    pause = _POLL_MIN_S
    while True:
        if attempt():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, _POLL_MAX_S)
