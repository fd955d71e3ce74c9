"""The runs pages' pure parts: highlights re-sanitised, the query string as the API's
search body, API errors named by form field, a run's input as messages, chunk links."""

from __future__ import annotations

from uuid import uuid4

import msgspec
import pytest

from myaiserv.console.pages import highlighted
from myaiserv.console.run_search import SearchForm, form_field, validation_error
from myaiserv.console.runs import chunk_views, messages_of
from myaiserv.kit.validation import InvalidInputError


def test_only_mark_tags_survive_a_highlight() -> None:
    api = "&lt;script&gt;alert(1)&lt;/script&gt; <mark>word</mark> &amp; <b>raw</b>"
    html = str(highlighted(api))
    assert html == (
        "&lt;script&gt;alert(1)&lt;/script&gt; <mark>word</mark> &amp; &lt;b&gt;raw&lt;/b&gt;"
    )
    assert str(highlighted("<img src=x onerror=alert(1)>")) == "&lt;img src=x onerror=alert(1)&gt;"
    assert str(highlighted("<mark>open")) == "<mark>open</mark>"  # never left open


def test_the_query_string_becomes_the_api_search() -> None:
    doc = uuid4()
    form = SearchForm.of(
        {
            "q": ["  hello "],
            "model": ["gpt-a, gpt-b", "gpt-c"],
            "status": ["error"],
            "latency_min": ["10.5"],
            "tokens_max": ["100"],
            "from": ["2026-01-02"],
            "to": ["2026-01-03"],
            "document_id": [str(doc)],
            "sort": ["latency"],
            "cursor": ["abc"],
            "unknown": ["x"],
        }
    )
    req = form.request()
    assert req.query == "hello"
    assert req.filters.model == ["gpt-a", "gpt-b", "gpt-c"]
    assert req.filters.status == ["error"]
    assert req.filters.latency_ms is not None and req.filters.latency_ms.gte == 10.5
    assert req.filters.total_tokens is not None and req.filters.total_tokens.lte == 100
    created = req.filters.created_at
    assert created is not None and created.gte is not None and created.lte is not None
    assert created.gte.isoformat() == "2026-01-02T00:00:00+00:00"
    assert created.lte.isoformat() == "2026-01-03T23:59:59.999000+00:00"
    assert req.filters.document_id == doc
    assert req.sort == "latency" and req.cursor == "abc" and req.aggregations is True
    # Links keep the search and drop the cursor; a facet toggles its value.
    href, active = form.toggle("model", "gpt-b")
    assert active and "gpt-b" not in href and "cursor" not in href and "q=hello" in href


def test_bad_values_are_named_by_their_form_field() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        SearchForm.of({"latency_min": ["fast"]}).request()
    assert validation_error(caught.value)[0] == "latency_min"
    with pytest.raises(msgspec.ValidationError) as caught:
        SearchForm.of({"conversation_id": ["nope"]}).request()
    assert validation_error(caught.value)[0] == "conversation_id"
    assert form_field("filters.status[1]") == "status"
    assert form_field("filters.created_at.lte") == "to"
    assert form_field("query") == "q"
    name, message = validation_error(InvalidInputError("filters.cost_usd.gte", "is above"))
    assert (name, message) == ("cost_min", "is above")


def test_a_json_message_list_is_shown_as_messages() -> None:
    msgs = messages_of(
        '[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]'
    )
    assert [(m.role, m.content) for m in msgs] == [("system", "be brief"), ("user", "hi")]
    assert [(m.role, m.content) for m in messages_of("[not json")] == [("user", "[not json")]


def test_chunks_link_to_their_passage_and_document() -> None:
    doc = uuid4()
    views = chunk_views([f"{doc}:3:ab", "other"], [f"{doc}:3:ab", "cited-only"])
    assert [v.id for v in views] == [f"{doc}:3:ab", "other", "cited-only"]
    first = views[0]
    assert first.cited and first.retrieved and first.document_id == doc
    assert first.position == "3" and first.href == f"/console/chunks/{doc}:3:ab"
    assert first.runs_href == f"/console/runs?document_id={doc}"
    assert views[2].cited and not views[2].retrieved and views[2].document_id is None
