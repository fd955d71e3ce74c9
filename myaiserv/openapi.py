"""The OpenAPI document says what the API really answers: every /v1 operation documents its
error responses (problem+json, and OpenAI's error object on the OpenAI-compatible
routes), and the chat route its event stream. Clients generated from the schema, and the
schemathesis run in the tests, then see no undocumented status or content type."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)

from myaiserv.problems import PROBLEM_JSON

OPENAI_ROUTES = ("/v1/chat/completions", "/v1/models", "/v1/embeddings")
STREAMING_ROUTES = ("/v1/chat/completions",)

_STRING = Schema(type=OpenAPIType.STRING)
_NULLABLE_STRING = Schema(one_of=[_STRING, Schema(type=OpenAPIType.NULL)])

PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    description="RFC 9457 problem details; `errors` (or `field`) names the bad input.",
    required=["title", "status", "detail"],
    properties={
        "type": _STRING,
        "title": _STRING,
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": _STRING,
        "instance": _STRING,
    },
)
OPENAI_ERROR = Schema(
    type=OpenAPIType.OBJECT,
    description="OpenAI's error object.",
    required=["error"],
    properties={
        "error": Schema(
            type=OpenAPIType.OBJECT,
            required=["message", "type"],
            properties={
                "message": _STRING,
                "type": _STRING,
                "param": _NULLABLE_STRING,
                "code": _NULLABLE_STRING,
            },
        )
    },
)

ERRORS = {
    "400": "Malformed request (names the field)",
    "401": "No API key, or not a valid one",
    "403": "The key lacks the scope",
    "404": "Not found (or another tenant's)",
    "413": "Body too large",
    "422": "Well-formed but invalid input (names the field)",
    "429": "Rate limit or quota reached; see Retry-After",
    "503": "A dependency is unavailable; see Retry-After",
}
WRITE_ERRORS = {"409": "Conflicts with the current state"}
PROVIDER_ERRORS = {
    "502": "The model provider failed",
    "504": "The model provider timed out",
}


def _operations(path_item: object) -> list[Operation]:
    methods = ("get", "put", "post", "delete", "patch")
    return [op for m in methods if (op := getattr(path_item, m, None)) is not None]


def document_errors(app: Litestar) -> None:
    openapi = app.openapi_schema  # built once and cached: changes here are served
    schemas = openapi.components.schemas
    schemas["Problem"] = PROBLEM
    schemas["OpenAIError"] = OPENAI_ERROR
    problem = OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))
    openai_error = OpenAPIMediaType(schema=Reference(ref="#/components/schemas/OpenAIError"))
    for path, item in (openapi.paths or {}).items():
        if not path.startswith("/v1"):
            continue
        is_openai = path in OPENAI_ROUTES
        for op in _operations(item):
            responses = dict(op.responses or {})
            errors = dict(ERRORS)
            if getattr(item, "get", None) is not op:
                errors.update(WRITE_ERRORS)
            if is_openai or path.startswith("/v1/rag"):
                errors.update(PROVIDER_ERRORS)
            for status, description in errors.items():
                content = {PROBLEM_JSON: problem}
                if is_openai:
                    content["application/json"] = openai_error
                responses[status] = OpenAPIResponse(description=description, content=content)
            ok = responses.get("200")
            if path in STREAMING_ROUTES and isinstance(ok, OpenAPIResponse):
                ok.content = {
                    **(ok.content or {}),
                    "text/event-stream": OpenAPIMediaType(
                        schema=Schema(
                            type=OpenAPIType.STRING,
                            description="`stream: true`: chat.completion.chunk events, then "
                            "`data: [DONE]`",
                        )
                    ),
                }
            op.responses = responses
