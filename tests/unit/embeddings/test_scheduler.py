"""The embedding worker runs urgent jobs (a search's query) ahead of queued batches, in
arrival order within a priority, and drops jobs whose caller gave up."""

from __future__ import annotations

import threading

import pytest

from myaiserv.embeddings.scheduler import BULK, URGENT, PriorityWorker


def test_urgent_jobs_overtake_queued_batches_but_not_the_running_one() -> None:
    worker = PriorityWorker("test-embed")
    ran: list[str] = []
    release, started = threading.Event(), threading.Event()
    running = worker.submit(BULK, lambda: (started.set(), release.wait(10), ran.append("running")))
    assert started.wait(10)
    batches = [worker.submit(BULK, ran.append, f"batch{i}") for i in range(3)]
    query = worker.submit(URGENT, ran.append, "query")
    release.set()
    for future in [running, *batches, query]:
        future.result(timeout=10)
    assert ran == ["running", "query", "batch0", "batch1", "batch2"]
    worker.close()


def test_a_cancelled_job_is_skipped_and_close_cancels_what_is_queued() -> None:
    worker = PriorityWorker("test-embed")
    ran: list[str] = []
    release, started = threading.Event(), threading.Event()
    running = worker.submit(BULK, lambda: (started.set(), release.wait(10))[1])
    assert started.wait(10)
    dropped = worker.submit(BULK, ran.append, "dropped")
    kept = worker.submit(BULK, ran.append, "kept")
    queued = worker.submit(BULK, ran.append, "queued")
    assert dropped.cancel()
    release.set()
    kept.result(timeout=10)
    queued.result(timeout=10)
    assert ran == ["kept", "queued"]
    assert running.result(timeout=10) is True

    release.clear()
    started.clear()
    blocker = worker.submit(BULK, lambda: (started.set(), release.wait(10))[1])
    assert started.wait(10)
    late = worker.submit(BULK, ran.append, "late")
    worker.close()
    release.set()
    assert blocker.result(timeout=10) is True
    assert late.cancelled()
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(BULK, ran.append, "after close")


def test_an_exception_reaches_the_caller() -> None:
    worker = PriorityWorker("test-embed")
    future = worker.submit(URGENT, int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        future.result(timeout=10)
    worker.close()
