"""Runs search's requests: text, filters and the console overview's aggregations."""

from __future__ import annotations

from bench.growth_runs import bodies


def test_runs_requests_of_each_kind() -> None:
    kinds = bodies(["library", "catalogue", "indexing"])
    assert [b["query"] for b in kinds["text"]] == ["library", "catalogue", "indexing"]
    assert all(not b.get("query") and b["sort"] == "time" for b in kinds["filters"])
    assert {len(b["aggregations"]) for b in kinds["dashboard"]} == {3}
    assert {b["size"] for b in kinds["dashboard"]} == {0}
