"""Browser-facing policy: security headers on every API response, CORS only for the
origins configured (preflight answered without an API key)."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.app import create_app
from myaiserv.config import HttpSettings, Settings
from tests.support import TenantKey

pytestmark = pytest.mark.integration


async def test_security_headers_and_no_cors_by_default(api: AsyncTestClient):
    for resp in (await api.get("/health"), await api.get("/v1/documents")):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        assert "access-control-allow-origin" not in resp.headers
    docs = await api.get("/schema/swagger")
    assert "content-security-policy" not in docs.headers  # the UI loads its own assets
    cross = await api.get("/v1/documents", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in cross.headers


async def test_cors_for_configured_origins_only(
    settings: Settings, embedder, resources, tenant: TenantKey
):
    configured = settings.model_copy(
        update={"http": HttpSettings(cors_origins=["https://app.example"])}
    )
    async with AsyncTestClient(app=create_app(configured, embedder=embedder)) as client:
        preflight = await client.options(
            "/v1/search",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        assert preflight.status_code in (200, 204), preflight.text
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        real = await client.get(
            "/v1/documents", headers={**tenant.headers, "Origin": "https://app.example"}
        )
        assert real.status_code == 200
        assert real.headers["access-control-allow-origin"] == "https://app.example"
        assert "ratelimit-remaining" in real.headers["access-control-expose-headers"].lower()
        other = await client.get(
            "/v1/documents", headers={**tenant.headers, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
