"""The soak's judgement: a series grows only when it rose past its tolerance and is still
rising; requests are windowed and counted by status (429s apart from errors); the
reconciliation finds lost, resurrected, stale and extra entries; the heap after GC is
read from the node's GC log; and the report section and plot come from the figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench import plots, report, soak
from bench.soak_probes import (
    Request,
    Tolerance,
    Watched,
    answers,
    growth,
    heap_after_gc_mb,
    memory_mb,
    read_log,
    tree,
    windows,
)

TOL = Tolerance(0.10, 10.0)


def series(values: list[float], every: float = 30.0) -> list[list[float]]:
    return [[i * every, v] for i, v in enumerate(values)]


def test_a_flat_series_does_not_grow() -> None:
    g = growth(series([500.0] * 5 + [505.0, 498.0, 502.0] * 5), 600, TOL)
    assert g["grows"] is False
    assert abs(g["growth_pct"]) < 2


def test_a_series_rising_past_its_tolerance_grows() -> None:
    points = series([100.0 + 10 * i for i in range(21)])  # 100 -> 300 MB over 600 s
    g = growth(points, 600, TOL)
    assert g["grows"] is True
    # Second quarter (150-300 s): median 175; last quarter (450-600 s): median 275.
    assert g["q2_median"] == 175.0 and g["q4_median"] == 275.0
    assert g["growth_pct"] == 57.1
    assert g["slope_per_h"] == 1200.0  # 10 MB per 30 s
    assert (g["first"], g["last"], g["max"]) == (100.0, 300.0, 300.0)


def test_a_rise_within_the_absolute_tolerance_does_not_grow() -> None:
    # +8 MB on 20 MB is 40%, but under the 10 MB floor: noise on a small process.
    g = growth(series([20.0 + 0.4 * i for i in range(21)]), 600, TOL)
    assert g["growth_pct"] > 10 and g["grows"] is False


def test_a_step_that_has_levelled_off_does_not_grow() -> None:
    # Up from 100 to 200 just after the second quarter, then flat (a cache filled once):
    # the last quarter is above the second, but the second half's line does not rise.
    g = growth(series([100.0] * 10 + [200.0] * 11), 600, TOL)
    assert g["q4_median"] - g["q2_median"] == 100
    assert g["slope_per_h"] <= 0 and g["grows"] is False


def test_requests_are_windowed_and_counted_by_status() -> None:
    log = [
        "1000.000 search 200 10.0",
        "1000.500 search 200 30.0",
        "1005.000 chat 429 1.0",
        "1012.000 search 200 20.0",
        "1013.000 write 0 5000.0",
        "999.000 search 200 99.0",  # before the load started: left out of the windows
        "garbage",
    ]
    requests = read_log(log)
    assert len(requests) == 6 and requests[4] == Request(1013.0, "write", 0, 5000.0)
    assert windows(requests, 1000.0, 10.0) == {
        "chat": [[10.0, 1, 1.0, 1.0]],
        "search": [[10.0, 2, 10.0, 30.0], [20.0, 1, 20.0, 20.0]],
        "write": [[20.0, 1, 5000.0, 5000.0]],
    }
    assert answers(requests) == {
        "chat": {"429": 1},
        "search": {"200": 4},
        "write": {"0": 1},
    }


def test_the_figures_count_429s_apart_from_errors() -> None:
    requests = read_log(
        [
            "1.0 search 200 10",
            "2.0 search 503 10",
            "3.0 chat 429 5",
            "4.0 write 201 8",
            "5.0 delete 204 7",
            "6.0 write 0 60000",
        ]
    )
    judged = soak.judged(
        {
            "memory_mb.web-1": series([300.0, 300.0, 310.0, 330.0, 360.0]),
            "memory_mb.nginx": series([8.0] * 5),
            "redis_used_mb": series([2.0, 3.0, 4.0, 5.0, 6.0]),
        },
        120,
    )
    checked = soak.reconcile({}, set(), set(), {}, {}, set(), set(), set())
    f = soak.figures(judged, requests, 120.0, 1.5, checked, 256.0, {})
    assert f["statuses"] == {"0": 1, "200": 1, "201": 1, "204": 1, "429": 1, "503": 1}
    assert f["errors"] == 2 and f["errors_by_status"] == {"0": 1, "503": 1}
    assert f["rate_limited_429"] == 1
    assert f["max_rss_growth_process"] == "web-1"
    assert f["max_rss_growth_pct"] == judged["memory_mb.web-1"]["growth_pct"] > 0
    assert f["app_max_rss_growth_process"] == "web-1"  # nginx is not MyAIServ's own
    assert f["growing"] == ["memory_mb.web-1"]
    assert f["latency"]["write"]["requests"] == 2


def test_the_reconciliation_finds_what_is_lost_and_what_is_extra() -> None:
    ok = soak.reconcile(
        acked={"a": 3, "b": 1, "d": 2},
        deleted={"d"},
        seeded={"s"},
        index_docs={"a": {3}, "b": {1}, "s": {1}},
        database_docs={"a": 3, "b": 1, "s": 1},
        acked_runs={"r1", "r2"},
        index_runs={"r1", "r2", "r3"},
        database_runs={"r1", "r2", "r3"},  # r3: a run no answer named (e.g. failed chat)
    )
    assert ok["lost_writes"] == 0 and ok["extra_in_index"] == 0
    assert ok["acknowledged_documents"] == 3 and ok["acknowledged_deletes"] == 1

    bad = soak.reconcile(
        acked={"a": 3, "b": 1, "c": 1, "d": 2, "e": 2},
        deleted={"d"},
        seeded={"s"},
        # a: the index holds version 2 only (its update lost); c: not indexed at all;
        # d: deleted but still indexed; e: a stale chunk of version 1 beside version 2;
        # x: a document nobody wrote; s: the seed, missing.
        index_docs={"a": {2}, "b": {1}, "d": {2}, "e": {1, 2}, "x": {1}},
        database_docs={"a": 3, "b": 1, "c": 1, "e": 2, "s": 1, "u": 1},
        acked_runs={"r1", "r2"},
        index_runs={"r1", "r9"},
        database_runs={"r1", "r2"},
    )
    assert bad["lost_documents"] == ["a", "c", "s"]
    assert bad["lost_runs"] == ["r2"]
    assert bad["lost_writes"] == 4
    assert bad["deleted_still_present"] == ["d"]
    assert bad["stale_chunks_documents"] == ["a", "e"]
    assert bad["extra_documents"] == ["x"]
    assert bad["extra_runs"] == ["r9"]
    assert bad["extra_in_index"] == 5
    assert bad["unacknowledged_stored"] == 1  # u: stored, its answer never came


def test_the_heap_after_the_last_collection_comes_from_the_gc_log(tmp_path: Path) -> None:
    log = tmp_path / "gc.log"
    assert heap_after_gc_mb(log) is None
    log.write_text(
        "[info][gc] GC(7) Pause Young (Normal) (G1 Evacuation Pause) 286M->26M(512M) 15.7ms\n"
        "[info][gc,heap] GC(8) Eden regions: 70->0(70)\n"
        "[info][gc] GC(8) Pause Remark 2G->1G(4G) 9.5ms\n"
        "[info][gc] GC(9) Pause Young (Mixed) (G1 Evacuation Pause) 300M->40960K(512M) 3ms\n"
        "[info][gc] GC(10) Concurrent Mark Cycle 12.0ms\n"
    )
    assert heap_after_gc_mb(log) == 40.0
    assert heap_after_gc_mb(log, tail_bytes=10) is None  # no whole pause line in the tail


def test_a_process_tree_and_its_memory() -> None:
    parent_of = {10: 1, 11: 10, 12: 11, 13: 1, 14: 10}
    assert sorted(tree(10, parent_of)) == [10, 11, 12, 14]
    me = os.getpid()
    measured = memory_mb(
        [Watched("me", me), Watched("me-pss", me, "pss"), Watched("gone", 999_999_999)]
    )
    assert set(measured) == {"me", "me-pss"}
    assert measured["me"] > 10 and measured["me-pss"] > 0


def results() -> dict[str, Any]:
    requests = read_log(["1.0 search 200 12", "2.0 chat 200 700", "3.0 chat 429 2"])
    judged = soak.judged(
        {
            "memory_mb.web-1": series([300.0] * 5),
            "memory_mb.postgres": series([80.0] * 5),
            "es_heap_after_gc_mb": series([40.0, 42.0, 41.0, 43.0, 42.0]),
            "es_open_contexts": series([0.0, 8.0, 6.0, 9.0, 7.0]),
            "redis_used_mb": series([2.0, 6.0, 9.0, 14.0, 19.0]),
            "outbox_backlog": series([0.0, 3.0, 2.0, 4.0, 1.0]),
            "outbox_oldest_s": series([0.0, 0.5, 0.4, 0.6, 0.3]),
            "p99_ms.search": series([40.0, 30.0, 31.0, 29.0, 30.0]),
            "p50_ms.search": series([10.0, 9.0, 9.0, 9.0, 9.0]),
        },
        120,
    )
    checked = soak.reconcile(
        {"a": 2}, set(), {"s"}, {"a": {2}, "s": {1}}, {"a": 2, "s": 1}, {"r"}, {"r"}, {"r"}
    )
    return {
        "soak": soak.figures(
            judged,
            requests,
            120.0,
            2.0,
            checked,
            256.0,
            {
                "emb": {"keys": 1200, "mb": 2.5, "without_expiry": 0},
                "ratelimit": {"keys": 3, "mb": 0.01, "without_expiry": 2},
            },
        ),
        "_method": {"soak": {"how": "Mixed load for a while."}},
    }


def test_the_soak_section_says_what_grew_and_what_was_lost() -> None:
    text = report.render(results())
    assert "## Soak" in text
    assert "120 s of mixed load, 8 users against 3 API instances behind nginx" in text
    assert "Errors (any answer but a 2xx or a 429, or none): **0**; 429s 1." in text
    assert "Growing: `redis_used_mb`." in text
    assert "own processes: 0.0% (web-1); Redis 120.0% (its maxmemory: 256.0 MB)" in text
    assert "lost **0**, extra in the index **0**" in text
    assert (
        "Redis at the end, by kind of key: `emb` 1,200 keys, 2.5 MB, `ratelimit` 3 keys, "
        "0.0 MB (**2 never expire**)." in text
    )
    assert "| chat | 2 | 2 | 700 | 200: 1, 429: 1 |" in text
    assert "| `redis_used_mb` | 2.0 | 7.5 | 16.5 | +120.0% |" in text
    assert "| `memory_mb.web-1` | 300.0 | 300.0 | 300.0 | +0.0% | +0.0 | no |" in text
    assert "How: Mixed load for a while." in text
    assert "## Soak" not in report.render({})


def test_the_soak_plot_is_drawn(tmp_path: Path) -> None:
    written = plots.render(results(), tmp_path)
    assert [p.name for p in written] == ["soak.png"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
