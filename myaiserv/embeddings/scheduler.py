"""One thread that runs the model's work, urgent jobs first.

The model runs one batch at a time (its runtime already uses the cores). A search's query
embedding is one short job; an ``/v1/embeddings`` request or an indexing batch is many
jobs of ``batch_size`` texts each. Jobs queue by priority, then by arrival, so a query
waits for at most the one batch job already running, never for the rest of a large request.

A job runs in the submitter's ``contextvars`` context (copied when it is queued): the
trace the caller is in reaches the batch's span on this thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from myaiserv.embeddings.cores import name_os_thread

T = TypeVar("T")

URGENT = 0  # a query a user is waiting for
BULK = 1  # batches: /v1/embeddings, indexing

_STOP = 2  # after every job already queued


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    fn: Callable[[], Any] | None = field(compare=False)
    future: Future[Any] | None = field(compare=False)


class PriorityWorker:
    def __init__(self, name: str) -> None:
        self._jobs: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, priority: int, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on the worker thread; a cancelled future's job is skipped."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the embedding worker is closed")
            if not self._thread.is_alive():
                self._thread.start()
            context = contextvars.copy_context()
            job = partial(context.run, fn, *args)
            self._jobs.put(_Job(priority, next(self._order), job, future))
        return future

    async def run(self, priority: int, fn: Callable[..., T], *args: Any) -> T:
        """``submit`` awaited; cancelling the caller drops the job if it has not started."""
        return await asyncio.wrap_future(self.submit(priority, fn, *args))

    def close(self) -> None:
        """Jobs still queued are cancelled; the running one finishes."""
        with self._lock:
            self._closed = True
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job.future is not None:
                    job.future.cancel()
            self._jobs.put(_Job(_STOP, next(self._order), None, None))

    def _run(self) -> None:
        name_os_thread(f"{self._thread.name}-idle")  # it computes on one core (``cores.py``)
        while True:
            job = self._jobs.get()
            if job.fn is None or job.future is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(job.fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                job.future.set_exception(exc)
