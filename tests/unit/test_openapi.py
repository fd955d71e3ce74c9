"""The OpenAPI document describes every JSON body by its schema. A 2xx JSON response
documented as a bare string or an untyped value is what a keyword Litestar does not know
(FastAPI's ``response_model=``, kept silently in ``opt``) or a handler returning ``Response``,
``Any`` or ``dict`` produces; clients generated from such a document parse nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar

from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.openapi import document_errors

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def app() -> Litestar:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    document_errors(app)  # what start-up adds to the document
    return app


@pytest.fixture(scope="module")
def document(app: Litestar) -> dict[str, Any]:
    return app.openapi_schema.to_schema()


def json_successes(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``("POST /v1/search 200 application/json", schema)`` for every 2xx JSON body."""
    for path, item in document["paths"].items():
        for method in METHODS:
            responses = item.get(method, {}).get("responses", {})
            for status, response in responses.items():
                if not status.startswith("2"):
                    continue
                for media_type, content in (response.get("content") or {}).items():
                    if "json" in media_type:
                        yield f"{method.upper()} {path} {status} {media_type}", content["schema"]


def test_every_json_success_body_is_a_named_object_schema(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    wrong = []
    for where, schema in json_successes(document):
        name = schema.get("$ref", "").removeprefix("#/components/schemas/")
        target = components.get(name, {})
        if target.get("type") != "object" or not target.get("properties"):
            wrong.append(f"{where}: {schema}")
    assert not wrong, "JSON bodies documented without their schema:\n" + "\n".join(wrong)


def test_every_operation_that_answers_json_is_walked(document: dict[str, Any]) -> None:
    walked = {where for where, _ in json_successes(document)}
    assert {
        "POST /v1/search 200 application/json",
        "POST /v1/chat/completions 200 application/json",
        "POST /v1/rag/answer 200 application/json",
        "GET /ready 200 application/json",
        "POST /v1/documents 201 application/json",
    } <= walked
    assert len(walked) >= 40


def test_no_handler_passes_a_keyword_litestar_does_not_know(app: Litestar) -> None:
    stray = {
        f"{route.path} {handler.handler_name}": handler.opt
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        if handler.opt
    }
    assert not stray, f"keywords Litestar keeps in `opt` (not parameters it knows): {stray}"
