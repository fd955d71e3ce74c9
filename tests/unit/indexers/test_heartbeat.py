"""What a draining process says in its heartbeat: totals since it started, rates over its
last minute, and the chunks its batches wrote (counted once, however many indices a
reindex has them written to)."""

from __future__ import annotations

import os
import socket

from indexers.bulk import OK, POISON, Action, GroupOutcome
from indexers.heartbeat import Throughput, process_name
from indexers.worker import chunks_written


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates_are_over_the_last_minute_and_totals_since_the_start() -> None:
    clock = Clock()
    seen = Throughput(window_s=60, clock=clock)
    assert seen.rates() == (0.0, 0.0)  # nothing done, no time passed
    for _ in range(6):  # 10 chunks of 200 tokens every 10 s
        clock.now += 10
        seen.add(rows=2, chunks=10, tokens=2000)
        seen.rates()
    assert seen.rates() == (1.0, 200.0)
    for _ in range(12):  # then idle for two minutes: the rate falls to 0
        clock.now += 10
        seen.rates()
    assert seen.rates() == (0.0, 0.0)
    assert (seen.totals.rows, seen.totals.chunks, seen.totals.tokens) == (12, 60, 12000)


def test_chunks_written_once_per_chunk_and_only_when_their_record_succeeded() -> None:
    aliases = {"t-documents", "t-runs"}
    ok, bad = ("documents", "a"), ("documents", "b")
    actions = [
        Action(ok, "index", "t-documents", "a:0", 1, {"text": "x", "token_count": 100}),
        Action(ok, "index", "t-documents", "a:1", 1, {"text": "y", "token_count": 50}),
        # The same chunk into the index a reindex is building: not a second chunk.
        Action(ok, "index", "t-documents-v9-new", "a:0", 1, {"text": "x", "token_count": 100}),
        Action(ok, "delete", "t-documents", "a:2", 1),  # a stale chunk deleted
        Action(bad, "index", "t-documents", "b:0", 1, {"text": "z", "token_count": 70}),
        Action(("runs", "c"), "index", "t-runs", "c", 1, {"input": "no chunks here"}),
    ]
    outcomes = {ok: GroupOutcome(OK), bad: GroupOutcome(POISON)}
    assert chunks_written(actions, outcomes, aliases) == (2, 150)


def test_process_names_are_unique_across_machines() -> None:
    name = process_name("indexer")
    assert name.startswith("indexer-") and name.endswith(f"-{os.getpid()}")
    assert socket.gethostname() in name
