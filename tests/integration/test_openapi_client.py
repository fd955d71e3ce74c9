"""A typed client generated from the served OpenAPI document (openapi-python-client) creates
documents, finds them, pages with ``next_cursor`` and calls the readiness probe and the
OpenAI-compatible and RAG routes. A response the document describes wrongly fails here: it
does not parse into its model, or it carries fields the document does not declare."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import httpx
import pytest

from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.embeddings.model import Embedder
from myaiserv.resources import Resources
from tests.support import TenantKey, drain, uvicorn_thread

pytestmark = pytest.mark.integration

GENERATOR = "openapi-python-client"
PACKAGE = "myaiserv_client"


@pytest.fixture(scope="module")
def base_url(settings: Settings, embedder: Embedder, resources: Resources) -> Iterator[str]:
    """The app served by uvicorn on a loopback port, on this session's database and
    indices; ``resources`` made them."""
    with uvicorn_thread(create_app(settings, embedder=embedder)) as url:
        yield url


@pytest.fixture(scope="module")
def generated(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package generated from the served document; fails on any warning (a
    schema the generator cannot turn into a type)."""
    venv_bin = str(Path(sys.executable).parent)
    generator = shutil.which(GENERATOR, path=os.pathsep.join([venv_bin, os.environ["PATH"]]))
    assert generator, f"{GENERATOR} is not installed (a dev dependency: poetry install --with dev)"
    root = tmp_path_factory.mktemp("generated")
    schema = httpx.get(f"{base_url}/schema/openapi.json", timeout=30)
    assert schema.status_code == 200, schema.text
    (root / "openapi.json").write_bytes(schema.content)
    # No formatting hooks: the code is imported, not read.
    (root / "config.json").write_text(
        json.dumps({"package_name_override": PACKAGE, "post_hooks": []})
    )
    run = subprocess.run(
        [
            generator,
            "generate",
            "--path", str(root / "openapi.json"),
            "--output-path", str(root / PACKAGE),
            "--config", str(root / "config.json"),
            "--meta", "none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def gen(generated: ModuleType) -> Callable[[str], Any]:
    """``gen("api.search.v1_search_search")``: a module of the generated package."""
    return lambda name: importlib.import_module(f"{generated.__name__}.{name}")


@pytest.fixture
def sdk(gen: Callable[[str], Any], base_url: str, tenant: TenantKey) -> Any:
    """The generated client, authenticated as this test's tenant."""
    return gen("client").AuthenticatedClient(
        base_url=base_url,
        token=tenant.key,
        raise_on_unexpected_status=True,  # a status the document does not list fails
        timeout=httpx.Timeout(60),
    )


def undeclared(value: Any, where: str = "body") -> list[str]:
    """The fields of a parsed response that its model does not declare (a map, such as a
    hit's ``fields``, declares none and keeps every key as an additional property)."""
    if isinstance(value, list):
        return [f for i, item in enumerate(value) for f in undeclared(item, f"{where}[{i}]")]
    if not attrs.has(type(value)):
        return []
    declared = [f.name for f in attrs.fields(type(value)) if f.name != "additional_properties"]
    extra = value.additional_properties if declared else {}
    found = [f"{where}.{key}" for key in extra]
    for name in declared:
        found += undeclared(getattr(value, name), f"{where}.{name}")
    for key, item in value.additional_properties.items():
        found += undeclared(item, f"{where}[{key!r}]")
    return found


def parsed(response: Any, status: int, model: type) -> Any:
    """The body of a ``*_detailed`` answer, checked against its documented model."""
    assert response.status_code == status, response.content
    assert isinstance(response.parsed, model), response.content
    assert not undeclared(response.parsed), undeclared(response.parsed)
    return response.parsed


async def create_documents(gen: Callable[[str], Any], sdk: Any, texts: list[str]) -> list[str]:
    models, create = gen("models"), gen("api.documents.v1_documents_create")
    ids = []
    for i, text in enumerate(texts):
        body = models.DocumentCreate(title=f"Tides {i}", text=text, tags=["ocean"])
        document = parsed(
            await create.asyncio_detailed(client=sdk, body=body), 201, models.DocumentOut
        )
        assert document.title == f"Tides {i}" and document.tags == ["ocean"]
        ids.append(str(document.id))
    return ids


async def test_a_generated_client_creates_finds_and_pages(
    gen: Callable[[str], Any], sdk: Any, resources: Resources
) -> None:
    models, search = gen("models"), gen("api.search.v1_search_search")
    word = f"zq{uuid.uuid4().hex[:10]}"
    texts = [f"{word}: the sea rises and falls twice a day, tide {i}." for i in range(3)]
    created = await create_documents(gen, sdk, texts)
    await drain(resources)

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(created)):
        body = models.SearchRequest(query=word, kinds=["documents"], fields=["text"], size=1)
        if cursor is not None:
            body.cursor = cursor
        answer = await search.asyncio_detailed(client=sdk, body=body)
        page = parsed(answer, 200, models.SearchResponse)
        assert answer.headers["x-cache"] in ("hit", "miss", "bypass")
        assert page.mode == models.SearchResponseMode.HYBRID
        assert isinstance(page.total, models.Total) and page.total.value >= len(created)
        [hit] = page.hits
        assert isinstance(hit, models.Hit) and isinstance(hit.score, float)
        assert hit.kind == "documents" and word in hit.fields["text"]
        assert isinstance(hit.ranks, models.HitRanks)
        seen.append(hit.fields["document_id"])
        cursor = page.next_cursor
        assert isinstance(cursor, str) or len(seen) == len(created)
    assert sorted(seen) == sorted(created)


async def test_a_generated_client_reads_the_probe_openai_and_rag_routes(
    gen: Callable[[str], Any], sdk: Any, resources: Resources
) -> None:
    models = gen("models")
    ready = parsed(
        await gen("api.health.ready_ready").asyncio_detailed(client=sdk), 200, models.Ready
    )
    assert set(ready.checks.additional_properties) == {"elasticsearch", "postgres", "redis"}
    alive = await gen("api.health.health_health").asyncio_detailed(client=sdk)
    assert parsed(alive, 200, models.Alive).status == "ok"
    await create_documents(gen, sdk, ["Spring tides happen when the sun and moon align."])
    await drain(resources)

    listing = await gen("api.openai.v1_models_models").asyncio_detailed(client=sdk)
    assert "myaiserv-rag" in [m.id for m in parsed(listing, 200, models.ModelList).data]

    for encoding in ("float", "base64"):
        body = models.EmbeddingsRequest(
            input_=["tides", "moon"],
            encoding_format=models.EmbeddingsRequestEncodingFormat(encoding),
        )
        answer = await gen("api.openai.v1_embeddings_embeddings").asyncio_detailed(
            client=sdk, body=body
        )
        vectors = parsed(answer, 200, models.EmbeddingList)
        assert [e.index for e in vectors.data] == [0, 1]
        assert isinstance(vectors.data[0].embedding, list if encoding == "float" else str)

    question = "When do spring tides happen?"
    answer = await gen("api.rag.v1_rag_answer_answer").asyncio_detailed(
        client=sdk, body=models.RagAnswerRequest(question=question)
    )
    rag = parsed(answer, 200, models.RagAnswer)
    assert rag.passages and isinstance(rag.usage, models.TokenUsage)
    assert rag.retrieval.hits and rag.citations

    body = models.ChatCompletionRequest(
        model="myaiserv-rag", messages=[models.ChatMessageIn(role="user", content=question)]
    )
    answer = await gen("api.openai.v1_chat_completions_chat_completions").asyncio_detailed(
        client=sdk, body=body
    )
    chat = parsed(answer, 200, models.ChatCompletion)
    assert chat.object_ == "chat.completion" and chat.choices[0].message.content
    assert isinstance(chat.citations[0], models.Citation)
