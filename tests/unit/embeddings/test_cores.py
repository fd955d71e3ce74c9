"""The machine's cores leased per batch (``myaiserv/embeddings/cores.py``): a process alone
takes them all, two share them, a batch waits for a core another process holds and goes
on the moment it is freed (by a release or by the holder's death), an unusable folder
degrades to no sharing, and a batch never runs more texts at once than its lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from myaiserv.embeddings.cores import CoreSlots
from myaiserv.embeddings.model import Embedder
from myaiserv.embeddings.runtime import in_lanes

ROOT = Path(__file__).resolve().parents[3]

# A process that takes every slot of the folder in argv[1] (argv[2] of them), says so on
# stdout, and holds them until stdin closes (or it is killed); then prints the monotonic
# time (system-wide) it let them go.
HOLDER = """
import sys, time
from pathlib import Path
from myaiserv.embeddings.cores import CoreSlots
slots = CoreSlots(Path(sys.argv[1]), int(sys.argv[2]))
with slots.lease(0) as lease:
    print(len(lease.slots), flush=True)
    sys.stdin.read()
    released = time.monotonic()
print(released, flush=True)
"""


def holder(folder: Path, count: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == str(count)  # it holds them all now
    return proc


def test_a_process_alone_takes_every_core_or_as_many_as_it_may(tmp_path: Path) -> None:
    slots = CoreSlots(tmp_path / "cores", 4)
    with slots.lease(0) as lease:
        assert lease.slots == (0, 1, 2, 3) and lease.threads == 4
    with slots.lease(2) as lease:
        assert lease.slots == (0, 1) and lease.threads == 2
    with slots.lease(9) as lease:  # never more than the machine's
        assert lease.threads == 4
    slots.close()


def test_two_processes_share_the_cores_and_never_hold_more_than_there_are(
    tmp_path: Path,
) -> None:
    # Two views of one folder: two open file descriptions, so their locks exclude each
    # other as two processes' do.
    first, second = CoreSlots(tmp_path, 4), CoreSlots(tmp_path, 4)
    with first.lease(3) as a, second.lease(0) as b:
        assert a.threads == 3 and b.slots == (3,) and b.threads == 1
        assert not set(a.slots) & set(b.slots)
    with second.lease(0) as b:  # released: all of them again
        assert b.threads == 4


def test_a_batch_waits_for_a_core_another_process_holds(tmp_path: Path) -> None:
    proc = holder(tmp_path, 2)
    assert proc.stdin is not None and proc.stdout is not None
    slots = CoreSlots(tmp_path, 2, wait_s=60)
    acquired: list[float] = []

    def lease() -> None:
        with slots.lease(0) as held:
            acquired.append(time.monotonic())
            assert held.slots and held.waited_s > 0

    waiting = threading.Thread(target=lease)
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and not acquired  # every core is the other process's
    proc.stdin.close()
    released = float(proc.stdout.readline())
    waiting.join(30)
    assert acquired and acquired[0] >= released
    proc.wait(10)


def test_a_dead_holder_frees_its_cores(tmp_path: Path) -> None:
    proc = holder(tmp_path, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    with CoreSlots(tmp_path, 2, wait_s=30).lease(0) as held:
        assert held.threads == 2 and held.waited_s < 30


def test_a_holder_that_never_lets_go_delays_a_batch_only_up_to_the_wait(
    tmp_path: Path,
) -> None:
    proc = holder(tmp_path, 2)
    try:
        with CoreSlots(tmp_path, 2, wait_s=0.2).lease(0) as held:
            # A stopped process runs nothing: one thread without a slot.
            assert held.slots == () and held.threads == 1 and held.waited_s >= 0.2
    finally:
        proc.kill()
        proc.wait(10)


def test_an_unusable_folder_means_no_sharing_not_a_failure(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("")
    with CoreSlots(taken, 4).lease(3) as held:
        assert held.slots == () and held.threads == 3


def test_a_batch_runs_no_more_texts_at_once_than_its_lanes() -> None:
    from concurrent.futures import ThreadPoolExecutor

    running, most, done = 0, 0, []
    lock = threading.Lock()

    def run(item: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
            done.append(item)

    with ThreadPoolExecutor(4) as pool:
        for lanes in (1, 2, 3):
            most, done[:] = 0, []
            in_lanes(pool, lanes, list(range(12)), run)
            assert most == lanes and sorted(done) == list(range(12))


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    model = Embedder(threads=2, cores_dir=None)
    model.slots = CoreSlots(tmp_path_factory.mktemp("cores"), 2)  # two cores, whatever runs this
    model.load()
    return model


def test_vectors_do_not_depend_on_the_cores_a_batch_got(embedder: Embedder, tmp_path: Path) -> None:
    texts = [f"text {i}: " + "word " * (i % 40) for i in range(24)]
    alone = embedder.encode_sync(texts)
    assert embedder.slots is not None
    # Another process holds one core of two: the batch runs on the other.
    other = CoreSlots(embedder.slots.directory, 2)
    with other.lease(1):
        shared = embedder.encode_sync(texts)
    one_thread = embedder.encode_sync(texts, lease=False)
    assert np.allclose(alone, shared, atol=1e-6) and np.allclose(alone, one_thread, atol=1e-6)
