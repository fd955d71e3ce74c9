"""The one translation of Elasticsearch's failures into the API's: what each becomes, from
an exception of the client or an error inside an ``_msearch`` answer."""

from __future__ import annotations

import elasticsearch
import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

from myaiserv.errors import AppError, DependencyUnavailableError
from myaiserv.search.cursor import CursorExpiredError
from myaiserv.search.store import (
    MISSING_INDICES,
    NodeLeftError,
    attempt_timeout,
    failure,
    translated,
)

CONTEXT_MISSING = {
    "type": "search_phase_execution_exception",
    "root_cause": [{"type": "search_context_missing_exception", "reason": "No search context"}],
}


def api_error(status: int, error: dict | str) -> elasticsearch.ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "es", 9200))
    return elasticsearch.ApiError(str(error), meta, {"error": error, "status": status})


@pytest.mark.parametrize(
    ("status", "error", "detail"),
    [
        (404, {"type": "index_not_found_exception"}, MISSING_INDICES),
        (429, {"type": "es_rejected_execution_exception"}, "the search cluster is overloaded"),
        (500, {"type": "illegal_state_exception"}, "the search failed on the cluster"),
        (503, {"type": "search_phase_execution_exception"}, "the search failed on the cluster"),
        (400, {"type": "unavailable_shards_exception"}, "the search failed on the cluster"),
        (503, "cluster_block_exception", "the search failed on the cluster"),
        (401, {"type": "security_exception"}, "the search cluster refused our user"),
        (403, {"type": "security_exception"}, "the search cluster refused our user"),
    ],
)
def test_the_clusters_failures_are_a_503_saying_when_to_retry(status, error, detail):
    translated_ = failure(status, error)
    assert isinstance(translated_, DependencyUnavailableError)
    assert (translated_.status_code, translated_.detail) == (503, detail)
    assert translated_.headers == {"Retry-After": "5"}
    assert translated_.extra["dependency"] == "elasticsearch"


def test_a_body_elasticsearch_refuses_is_a_400_naming_only_the_error_type():
    refused = failure(400, {"type": "too_many_nested_clauses", "reason": "SELECT secret"})
    assert type(refused) is AppError and refused.status_code == 400
    assert refused.detail == "search failed: too_many_nested_clauses"


def test_a_lost_point_in_time_expires_the_cursor_only_when_paging():
    assert isinstance(failure(404, CONTEXT_MISSING, paging=True), CursorExpiredError)
    assert isinstance(failure(404, {"type": "x"}, paging=True), CursorExpiredError)
    assert isinstance(failure(500, CONTEXT_MISSING, paging=True), CursorExpiredError)
    assert failure(404, CONTEXT_MISSING).status_code == 503


def test_client_exceptions_are_translated_the_same_way():
    with pytest.raises(DependencyUnavailableError) as caught, translated():
        raise api_error(429, {"type": "es_rejected_execution_exception"})
    assert caught.value.detail == "the search cluster is overloaded"
    assert isinstance(caught.value.__cause__, elasticsearch.ApiError)
    with pytest.raises(CursorExpiredError), translated(paging=True):
        raise api_error(404, CONTEXT_MISSING)
    with pytest.raises(AppError, match="search failed: parsing_exception"), translated():
        raise api_error(400, {"type": "parsing_exception"})


@pytest.mark.parametrize(
    "exc",
    [
        elasticsearch.ConnectionError("refused"),
        elasticsearch.ConnectionTimeout("timed out"),
    ],
)
def test_unreachable_or_timed_out_is_a_503(exc: Exception):
    with pytest.raises(DependencyUnavailableError) as caught, translated():
        raise exc
    assert caught.value.status_code == 503 and caught.value.headers == {"Retry-After": "5"}


def test_other_exceptions_pass_through():
    with pytest.raises(KeyError), translated():
        raise KeyError("ours")


@pytest.mark.parametrize(("budget", "attempt"), [(5.0, 4.0), (3.0, 2.0), (2.0, 1.0), (1.0, 0.5)])
def test_an_attempt_gets_the_budget_but_a_retry_s_share(budget: float, attempt: float) -> None:
    # A retry keeps a second, or half of a budget under two seconds.
    assert attempt_timeout(budget) == pytest.approx(attempt)


NODE_GONE = {"type": "node_not_connected_exception", "reason": "[es01] connection already closed"}


def test_a_node_that_left_during_the_search_is_told_apart():
    # As the cluster answers when a later phase had to return to the node that left.
    error = {
        "type": "search_phase_execution_exception",
        "reason": "all shards failed",
        "phase": "fetch",
        "failed_shards": [{"shard": 0, "index": "d", "node": "n1", "reason": NODE_GONE}],
    }
    lost = failure(500, error)
    assert isinstance(lost, NodeLeftError) and lost.status_code == 503
    assert lost.detail == "the search failed on the cluster"
    assert not isinstance(failure(500, {"type": "illegal_state_exception"}), NodeLeftError)
    # A stopping node freed the search's context with the shards it closed: a 404, the
    # indices are there. Within a cursor's point in time the cursor has expired instead.
    assert isinstance(failure(404, CONTEXT_MISSING), NodeLeftError)
    assert isinstance(failure(404, CONTEXT_MISSING, paging=True), CursorExpiredError)
    assert failure(404, {"type": "index_not_found_exception"}).detail == MISSING_INDICES
    # A body we built that names it is still ours to fix.
    assert type(failure(400, {"type": "parsing_exception", "reason": str(NODE_GONE)})) is AppError
