"""Bulk items classified: what is retried and what is dead-lettered."""

from __future__ import annotations

from indexers.bulk import POISON, RETRY, classify


def test_a_cluster_refusing_our_credentials_is_retried_never_dead_lettered() -> None:
    # The bulk helper's item when the whole request is refused (raise_on_exception=False).
    refused = "AuthenticationException(401, 'security_exception', 'unable to authenticate')"
    for status in (401, 403):
        outcome, reason, error = classify("index", {"status": status, "error": refused})
        assert (outcome, reason, error) == (RETRY, "refused_credentials", refused)
    mapping = {"type": "document_parsing_exception", "reason": "bad field"}
    assert classify("index", {"status": 400, "error": mapping})[0] == POISON
