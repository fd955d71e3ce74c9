"""Keys, scopes, the audit log, encrypted provider secrets, quotas and input hardening,
against the real stack."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text

from myaiserv.app import create_app
from myaiserv.auth.keys import split_prefix
from myaiserv.auth.service import TenantService
from myaiserv.config import LLMSettings, ModelAlias, ProviderSettings, SecretSettings, Settings
from myaiserv.db.models import AuditEvent, ProviderSecret
from myaiserv.resources import Resources
from myaiserv.secrets.box import SecretBox, SecretsError, generate_key
from tests.fakes.openai_server import MODELS, FakeOpenAIServer
from tests.support import TenantKey, make_tenant, process_env

pytestmark = pytest.mark.integration


async def audit_events(resources: Resources, tenant: TenantKey, action: str) -> list[AuditEvent]:
    async with resources.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == tenant.id, AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
        return list(rows)


# -- keys and scopes -------------------------------------------------------------------


async def test_an_admin_issues_lists_and_revokes_keys_and_every_step_is_audited(
    api: AsyncTestClient, client: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    resp = await api.post("/v1/admin/keys", json={"name": "ci", "scopes": ["read"]})
    assert resp.status_code == 201, resp.text
    issued = resp.json()
    assert issued["key"].startswith(issued["prefix"] + "_")
    assert issued["scopes"] == ["read"]
    new_key = {"Authorization": f"Bearer {issued['key']}"}

    # The new key reads, but cannot write (scope) or administer.
    assert (await client.get("/v1/documents", headers=new_key)).status_code == 200
    resp = await client.post("/v1/documents", json={"text": "x"}, headers=new_key)
    assert resp.status_code == 403
    assert "'write'" in resp.json()["detail"]
    assert (await client.get("/v1/admin/keys", headers=new_key)).status_code == 403

    listed = (await api.get("/v1/admin/keys")).json()["items"]
    assert {k["prefix"] for k in listed} >= {issued["prefix"]}
    assert all("key" not in k and "key_hash" not in k for k in listed)

    resp = await api.delete(f"/v1/admin/keys/{issued['id']}")
    assert resp.status_code == 200 and resp.json()["revoked_at"]
    resp = await client.get("/v1/documents", headers=new_key)
    assert resp.status_code == 401
    assert "revoked" in resp.json()["detail"]

    created = await audit_events(resources, tenant, "key.created")
    revoked = await audit_events(resources, tenant, "key.revoked")
    assert [e.target for e in created][-1] == f"key:{issued['prefix']}"
    assert created[-1].details["scopes"] == ["read"]
    assert [e.target for e in revoked] == [f"key:{issued['prefix']}"]
    admin_prefix = split_prefix(tenant.key)
    assert revoked[0].actor == f"key:{admin_prefix}"


async def test_keys_of_another_tenant_cannot_be_seen_or_revoked(
    api: AsyncTestClient, client: AsyncTestClient, resources: Resources
) -> None:
    other = await make_tenant(resources)
    theirs = (await client.get("/v1/admin/keys", headers=other.headers)).json()["items"]
    assert len(theirs) == 1
    resp = await api.delete(f"/v1/admin/keys/{theirs[0]['id']}")
    assert resp.status_code == 404
    assert (await client.get("/v1/documents", headers=other.headers)).status_code == 200
    mine = (await api.get("/v1/admin/keys")).json()["items"]
    assert theirs[0]["id"] not in {k["id"] for k in mine}


async def test_an_expired_key_is_refused(client: AsyncTestClient, resources: Resources) -> None:
    owner = await make_tenant(resources)
    async with resources.sessionmaker() as session, session.begin():
        issued = await TenantService(session).create_key(
            owner.name,
            scopes=["read"],
            key_name="short",
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    resp = await client.get("/v1/documents", headers={"X-API-Key": issued.plaintext})
    assert resp.status_code == 401
    assert "expired" in resp.json()["detail"]


async def test_key_creation_rejects_bad_scopes_and_past_expiry(api: AsyncTestClient) -> None:
    resp = await api.post("/v1/admin/keys", json={"name": "x", "scopes": ["root"]})
    assert resp.status_code == 400 and "scopes" in resp.text
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    resp = await api.post(
        "/v1/admin/keys", json={"name": "x", "scopes": ["read"], "expires_at": past}
    )
    assert resp.status_code == 422 and "expires_at" in resp.text


async def test_failed_authentications_are_audited_once_per_address_and_reason_a_minute(
    client: AsyncTestClient, resources: Resources
) -> None:
    owner = await make_tenant(resources)
    prefix = split_prefix(owner.key)
    wrong = {"Authorization": f"Bearer {prefix}_not-the-secret"}
    await resources.redis.flushdb()  # a fresh sampling window
    for _ in range(5):
        resp = await client.get("/v1/documents", headers=wrong)
        assert resp.status_code == 401
    events = await audit_events(resources, owner, "auth.failed")
    assert len(events) == 1
    assert events[0].outcome == "failure"
    assert events[0].details["reason"] == "invalid"
    assert events[0].actor == f"key:{prefix}"
    assert events[0].target == "/v1/documents"
    # Its admins read it through the API; the secret part of the key is nowhere.
    resp = await client.get(
        "/v1/admin/audit", params={"action": "auth.failed"}, headers=owner.headers
    )
    assert resp.status_code == 200
    assert [e["details"]["reason"] for e in resp.json()["items"]] == ["invalid"]
    assert "not-the-secret" not in resp.text


async def test_the_audit_log_is_per_tenant_filtered_and_paged(
    api: AsyncTestClient, client: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    for n in range(3):
        resp = await api.post("/v1/admin/keys", json={"name": f"k{n}", "scopes": ["read"]})
        assert resp.status_code == 201
    prompt = await api.post("/v1/prompts", json={"name": "sys", "template": "v1 {question}"})
    assert prompt.status_code == 201
    pid = prompt.json()["id"]
    assert (await api.post(f"/v1/prompts/{pid}/versions", json={"template": "v2"})).status_code
    assert (await api.put(f"/v1/prompts/{pid}/labels/production", json={"version": 2})).is_success

    first = (await api.get("/v1/admin/audit", params={"action": "key.", "limit": 2})).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = await api.get(
        "/v1/admin/audit", params={"action": "key.", "limit": 2, "cursor": first["next_cursor"]}
    )
    ids = [e["id"] for e in first["items"] + rest.json()["items"]]
    assert len(ids) == 4 == len(set(ids))  # 3 issued here + the bootstrap key
    assert ids == sorted(ids, reverse=True)

    labels = (await api.get("/v1/admin/audit", params={"action": "prompt."})).json()["items"]
    moves = [
        (e["details"]["label"], e["details"]["from_version"], e["details"]["to_version"])
        for e in labels
    ]
    assert moves == [("production", 1, 2), ("production", None, 1)]

    # Another tenant's admin sees none of it.
    other = await make_tenant(resources)
    theirs = (await client.get("/v1/admin/audit", headers=other.headers)).json()["items"]
    assert {e["action"] for e in theirs} == {"tenant.created", "key.created"}
    assert all(e["target"] != "prompt:sys:production" for e in theirs)


async def test_audit_query_parameters_are_validated(api: AsyncTestClient) -> None:
    resp = await api.get("/v1/admin/audit", params={"cursor": "abc"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "cursor"
    resp = await api.get("/v1/admin/audit", params={"outcome": "maybe"})
    assert resp.status_code == 400


# -- constant-time comparison ------------------------------------------------------------


def test_key_hashes_are_compared_in_constant_time_even_for_unknown_prefixes() -> None:
    """Audit of the comparison: hmac.compare_digest, and a dummy comparison when the
    prefix is unknown (so response time does not reveal which prefixes exist)."""
    import inspect

    from myaiserv.auth import keys, middleware

    assert "hmac.compare_digest" in inspect.getsource(keys.verify)
    source = inspect.getsource(middleware.ApiKeyAuthenticationMiddleware.authenticate_request)
    assert "DUMMY_HASH" in source
    assert not keys.verify("mas_000000000000_x", keys.DUMMY_HASH)


# -- encrypted provider secrets -------------------------------------------------------------


def test_the_secret_box_encrypts_decrypts_and_rotates() -> None:
    old, new = generate_key(), generate_key()
    token, kid = SecretBox([old]).encrypt("sk-live-123456")
    assert "sk-live" not in token
    both = SecretBox([new, old])
    assert both.decrypt(token) == "sk-live-123456"
    rotated, rotated_kid = both.rotate(token)
    assert rotated_kid == both.primary_key_id != kid
    assert SecretBox([new]).decrypt(rotated) == "sk-live-123456"
    with pytest.raises(SecretsError, match="cannot be decrypted"):
        SecretBox([new]).decrypt(token)
    with pytest.raises(SecretsError, match="not a Fernet key"):
        SecretBox(["short"])
    with pytest.raises(SecretsError, match="no secret keys"):
        SecretBox([])


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def secret_settings(settings: Settings, server: FakeOpenAIServer, keys: list[str]) -> Settings:
    llm = LLMSettings(
        providers=[
            ProviderSettings(name="local", kind="extractive", models=["extractive"]),
            ProviderSettings(
                name="vault",
                base_url=server.url,
                api_key_secret="vault-key",  # noqa: S106 - a secret's name
                models=list(MODELS),
                timeout_s=2.0,
                max_retries=0,
            ),
        ],
        aliases={"myaiserv-rag": ModelAlias(targets=["local/extractive"])},
    )
    return settings.model_copy(update={"llm": llm, "secrets": SecretSettings(keys=keys)})


async def cli(settings: Settings, *args: str, input: str | None = None) -> str:
    """Run `myaiserv ARGS` (in a thread: the command runs its own event loop)."""
    return await asyncio.to_thread(_cli, settings, *args, input=input)


def _cli(settings: Settings, *args: str, input: str | None = None) -> str:
    from myaiserv.cli import main

    env = {
        **process_env(settings),
        "MYAISERV_SECRETS__KEYS": ",".join(k.get_secret_value() for k in settings.secrets.keys),
    }
    result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def chat(settings: Settings, embedder, tenant: TenantKey, model: str) -> Any:
    async with AsyncTestClient(app=create_app(settings, embedder=embedder)) as c:
        return await c.post(
            "/v1/chat/completions",
            # A new question each time: a cached answer would not reach the provider.
            json={"model": model, "messages": [{"role": "user", "content": f"hi {uuid4()}"}]},
            headers=tenant.headers,
        )


async def test_provider_keys_are_stored_encrypted_used_rotated_and_never_shown(
    settings: Settings,
    embedder,
    resources: Resources,
    tenant: TenantKey,
    fake_llm: FakeOpenAIServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old, new = generate_key(), generate_key()
    plaintext = "sk-vault-" + generate_key()[:24]
    configured = secret_settings(settings, fake_llm, [old])
    assert "stored" in await cli(configured, "secrets", "set", "vault-key", input=plaintext + "\n")

    async with resources.sessionmaker() as session:
        row = await session.get(ProviderSecret, "vault-key")
        raw = await session.scalar(text("SELECT ciphertext FROM provider_secrets"))
    assert row is not None and plaintext not in row.ciphertext and plaintext not in raw

    # The provider sends the decrypted key upstream.
    resp = await chat(configured, embedder, tenant, "vault/echo")
    assert resp.status_code == 200, resp.text
    assert fake_llm.request_headers[-1]["authorization"] == f"Bearer {plaintext}"

    # An upstream that echoes the key: neither the client nor the logs see it.
    caplog.set_level(logging.DEBUG)
    resp = await chat(configured, embedder, tenant, "vault/leaky-auth")
    assert resp.status_code == 503
    assert plaintext not in resp.text and "[REDACTED]" in resp.text
    assert plaintext not in caplog.text
    async with resources.sessionmaker() as session:
        errors = await session.scalars(
            text("SELECT error FROM runs WHERE tenant_id = :t AND error IS NOT NULL"),
            {"t": tenant.id},
        )
        assert all(plaintext not in (e or "") for e in errors)

    # Rotation: instances configured with [new, old] read old and new ciphertexts;
    # `secrets rotate` moves every row to the new key; then the old key can go.
    rolling = secret_settings(settings, fake_llm, [new, old])
    assert (await chat(rolling, embedder, tenant, "vault/echo")).status_code == 200
    assert "re-encrypted 1" in await cli(rolling, "secrets", "rotate")
    assert "re-encrypted 0" in await cli(rolling, "secrets", "rotate")
    listing = await cli(rolling, "secrets", "list")
    assert "vault-key" in listing and SecretBox([new]).primary_key_id in listing
    assert plaintext not in listing
    after = secret_settings(settings, fake_llm, [new])
    assert (await chat(after, embedder, tenant, "vault/echo")).status_code == 200
    assert fake_llm.request_headers[-1]["authorization"] == f"Bearer {plaintext}"

    # Without the key that encrypted it, the provider is unavailable (503), not a 500.
    stale = secret_settings(settings, fake_llm, [generate_key()])
    resp = await chat(stale, embedder, tenant, "vault/echo")
    assert resp.status_code == 503 and "cannot be decrypted" in resp.text

    async with resources.sessionmaker() as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.tenant_id.is_(None))
                .where(AuditEvent.action.startswith("secret"))
                .order_by(AuditEvent.id)
            )
        )
    assert actions[-3:] == ["secret.set", "secrets.rotated", "secrets.rotated"]


async def test_a_missing_secret_makes_the_provider_unavailable(
    settings: Settings, embedder, tenant: TenantKey, fake_llm: FakeOpenAIServer, resources
) -> None:
    configured = secret_settings(settings, fake_llm, [generate_key()])
    configured.llm.providers[1].api_key_secret = "nobody-stored-this"  # noqa: S105
    resp = await chat(configured, embedder, tenant, "vault/echo")
    assert resp.status_code == 503
    assert "nobody-stored-this" in resp.text


def test_a_provider_takes_a_plain_key_or_a_stored_one_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        ProviderSettings(name="p", api_key="sk-x", api_key_secret="s", models=["m"])  # noqa: S106


# -- quotas ------------------------------------------------------------------------------


@pytest.fixture
async def kb_tenant(api: AsyncTestClient, tenant: TenantKey, resources: Resources) -> TenantKey:
    from tests.support import drain

    resp = await api.post(
        "/v1/documents",
        json={"title": "Tides", "text": "Tides are caused by the moon's gravity pulling water."},
    )
    assert resp.status_code == 201
    await drain(resources)
    return tenant


async def test_daily_token_quota_refuses_calls_once_used_up(
    api: AsyncTestClient, kb_tenant: TenantKey, resources: Resources
) -> None:
    body = {
        "model": "myaiserv-rag",
        "messages": [{"role": "user", "content": "What causes tides?"}],
    }
    first = await api.post("/v1/chat/completions", json=body)
    assert first.status_code == 200
    used = first.json()["usage"]["total_tokens"]
    assert (await api.get("/v1/usage")).json()["tokens"] == used

    async with resources.sessionmaker() as session, session.begin():
        await TenantService(session).set_quota(
            kb_tenant.name, daily_tokens=used + 1, daily_cost_usd=None
        )
    varied = {**body, "messages": [{"role": "user", "content": "Why are there tides?"}]}
    assert (await api.post("/v1/chat/completions", json=varied)).status_code == 200
    refused = await api.post(
        "/v1/chat/completions",
        json={**body, "messages": [{"role": "user", "content": "Tides and the moon?"}]},
    )
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert 0 < int(refused.headers["retry-after"]) <= 86401
    usage = (await api.get("/v1/usage")).json()
    assert usage["daily_token_quota"] == used + 1 and usage["tokens"] > used

    # The count survives losing Redis's counters: it is re-read from the recorded runs.
    await resources.redis.flushdb()
    assert (await api.post("/v1/chat/completions", json=varied)).status_code == 429
    assert (await api.get("/v1/usage")).json()["tokens"] == usage["tokens"]

    events = await audit_events(resources, kb_tenant, "tenant.quota_set")
    assert events[-1].details["daily_tokens"] == used + 1


async def test_a_tenant_quota_set_from_the_cli(settings: Settings, resources: Resources) -> None:
    owner = await make_tenant(resources)
    out = await cli(settings, "tenants", "quota", owner.name, "--daily-tokens", "5000")
    assert "5000" in out
    out = await cli(settings, "tenants", "quota", owner.name, "--default")
    assert "default" in out
    lines = await cli(settings, "audit", "--tenant", owner.name, "--action", "tenant.")
    actions = [json.loads(line)["action"] for line in lines.splitlines()]
    assert actions == ["tenant.quota_set", "tenant.quota_set", "tenant.created"]


# -- input hardening -----------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 5000, 200_000])
async def test_deeply_nested_json_is_a_400_naming_the_body(
    api: AsyncTestClient, depth: int
) -> None:
    body = b'{"text": "x", "metadata": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    resp = await api.post(
        "/v1/documents", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "nested deeper than 32" in resp.json()["detail"]


async def test_brackets_inside_strings_do_not_count_as_nesting(api: AsyncTestClient) -> None:
    text_value = "[" * 500 + '\\"{' * 100
    resp = await api.post("/v1/documents", json={"text": text_value, "metadata": {"a": [[1]]}})
    assert resp.status_code == 201, resp.text


async def test_a_nul_in_a_query_parameter_is_a_422_naming_it(api: AsyncTestClient) -> None:
    resp = await api.get("/v1/documents", params={"limit": "5", "tag": "a\x00b"})
    assert resp.status_code == 422
    assert resp.json()["errors"] == [{"field": "tag", "message": "contains a NUL character"}]


async def test_a_body_that_is_not_utf8_is_a_400(api: AsyncTestClient) -> None:
    resp = await api.post(
        "/v1/documents",
        content=b'{"text": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["detail"].startswith("body: is not UTF-8")


async def test_a_value_postgres_cannot_store_is_a_4xx_without_internals(
    api: AsyncTestClient,
) -> None:
    resp = await api.post("/v1/admin/keys", json={"name": "nul\x00name", "scopes": ["read"]})
    assert resp.status_code == 400
    assert "NUL" in resp.json()["detail"]
    assert "asyncpg" not in resp.text and "INSERT" not in resp.text
