"""The console's settings pages against the real stack: API keys shown once and enforced by
the API at once, provider secrets stored and never shown, users invited, re-roled and
disabled with effect on their very next request, admins only, each tenant only its own."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from myaiserv.app import create_app
from myaiserv.audit.log import AuditQuery, find
from myaiserv.config import SecretSettings, Settings
from myaiserv.console.login import sessions_of
from myaiserv.db.models import ApiKey, User
from myaiserv.embeddings.model import Embedder
from myaiserv.resources import Resources
from myaiserv.secrets import store
from myaiserv.secrets.box import SecretBox, generate_key
from tests.support import (
    ConsoleUser,
    TenantKey,
    console_login,
    csrf_field,
    make_tenant,
    make_user,
)

pytestmark = pytest.mark.integration

PAGES = ("", "/keys", "/secrets", "/users")


@pytest.fixture
async def app_client(
    settings: Settings, embedder: Embedder, resources: Resources
) -> AsyncIterator[AsyncTestClient]:
    """A second browser (its own cookies), not following redirects."""
    async with AsyncTestClient(app=create_app(settings, embedder=embedder)) as client:
        client.follow_redirects = False
        yield client


async def logged_in(client: AsyncTestClient, user: ConsoleUser) -> AsyncTestClient:
    response = await console_login(client, user)
    assert response.status_code == 303, response.text
    return client


async def audit_actions(resources: Resources, tenant: TenantKey, prefix: str) -> list[tuple]:
    async with resources.sessionmaker() as session:
        rows, _ = await find(session, AuditQuery(tenant_id=tenant.id, action=prefix, limit=100))
    return [(r.action, r.actor, r.target, r.details) for r in reversed(rows)]


# -- the index and who may see it ------------------------------------------------------------


async def test_the_index_links_every_settings_page(console: AsyncTestClient) -> None:
    page = await console.get("/console/settings")
    assert page.status_code == 200
    for name in ("keys", "secrets", "users", "usage", "audit"):
        assert f'href="/console/settings/{name}"' in page.text
    assert 'aria-current="page">Settings' in page.text


@pytest.mark.parametrize("role", ["viewer", "editor"])
async def test_viewers_and_editors_get_403_on_every_settings_page(
    visitor: AsyncTestClient, resources: Resources, tenant: TenantKey, role: str
) -> None:
    user = await make_user(resources, tenant, role)
    await logged_in(visitor, user)
    for path in PAGES:
        page = await visitor.get(f"/console/settings{path}")
        assert page.status_code == 403, path
        assert "<html" in page.text  # an error page, not JSON
    home = await visitor.get("/console/settings/keys", headers={"accept": "application/json"})
    assert home.status_code == 403 and home.headers["content-type"].startswith("application/")
    form = {"name": "sneaky", "scopes": "admin", "expires_in_days": "0", **csrf_field(visitor)}
    assert (await visitor.post("/console/settings/keys", data=form)).status_code == 403
    invite = {"email": f"x-{uuid.uuid4().hex[:6]}@e.test", "role": "admin", **csrf_field(visitor)}
    assert (await visitor.post("/console/settings/users", data=invite)).status_code == 403
    async with resources.sessionmaker() as session:
        names = list(
            await session.scalars(select(ApiKey.name).where(ApiKey.tenant_id == tenant.id))
        )
    assert "sneaky" not in names


async def test_without_a_session_settings_redirect_to_the_login(visitor: AsyncTestClient) -> None:
    page = await visitor.get("/console/settings/keys")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login?next=/console/settings/keys")


# -- API keys ---------------------------------------------------------------------------------


async def test_a_new_key_is_shown_once_works_with_its_scopes_and_revoked_is_refused(
    console: AsyncTestClient,
    client: AsyncTestClient,
    resources: Resources,
    tenant: TenantKey,
    console_user: ConsoleUser,
) -> None:
    form = {
        "name": "nightly <script>alert(1)</script>",
        "scopes": "read",
        "expires_in_days": "30",
        **csrf_field(console),
    }
    created = await console.post("/console/settings/keys", data=form)
    assert created.status_code == 201, created.text
    assert "no-store" in created.headers["cache-control"]
    (plaintext,) = re.findall(r'<code id="new-key">(mas_[^<]+)</code>', created.text)
    assert 'class="secret-once"' in created.text
    assert "<script>alert(1)" not in created.text and "&lt;script&gt;" in created.text
    assert plaintext not in created.headers.get("location", "")

    # The key works on the API with the scopes chosen, and expires when chosen.
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert (await client.get("/v1/runs", headers=headers)).status_code == 200
    assert (await client.get("/v1/admin/keys", headers=headers)).status_code == 403
    async with resources.sessionmaker() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.name.startswith("nightly")))
    assert row is not None and row.tenant_id == tenant.id and row.scopes == ["read"]
    assert row.expires_at is not None
    expected = datetime.now(UTC) + timedelta(days=30)
    assert abs((row.expires_at - expected).total_seconds()) < 120

    # Never again: not on the list, not on a later page.
    listing = await console.get("/console/settings/keys")
    assert listing.status_code == 200
    assert plaintext not in listing.text and row.prefix in listing.text
    assert 'class="secret-once"' not in listing.text

    revoked = await console.post(
        f"/console/settings/keys/{row.id}/revoke", data=csrf_field(console)
    )
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/console/settings/keys?done=revoked"
    assert (await client.get("/v1/runs", headers=headers)).status_code == 401
    after = await console.get(revoked.headers["location"])
    assert "revoked" in after.text and f"/keys/{row.id}/revoke" not in after.text

    events = await audit_actions(resources, tenant, "key.")
    mine = [e for e in events if e[2] == f"key:{row.prefix}"]
    assert [(e[0], e[1]) for e in mine] == [
        ("key.created", f"user:{console_user.email}"),
        ("key.revoked", f"user:{console_user.email}"),
    ]
    assert mine[0][3]["scopes"] == ["read"]


async def test_a_key_without_expiry_with_several_scopes(
    console: AsyncTestClient, client: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    form = [
        ("name", "deploy"),
        ("scopes", "read"),
        ("scopes", "write"),
        ("expires_in_days", "0"),
        *csrf_field(console).items(),
    ]
    created = await console.post(
        "/console/settings/keys",
        content="&".join(f"{k}={v}" for k, v in form),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert created.status_code == 201, created.text
    async with resources.sessionmaker() as session:
        row = await session.scalar(
            select(ApiKey).where(ApiKey.tenant_id == tenant.id, ApiKey.name == "deploy")
        )
    assert row is not None and row.scopes == ["read", "write"] and row.expires_at is None


async def test_bad_key_forms_are_shown_again_with_the_error(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    no_scope = {"name": "k", "expires_in_days": "7", **csrf_field(console)}
    page = await console.post("/console/settings/keys", data=no_scope)
    assert page.status_code == 400
    assert 'id="scopes-error"' in page.text and 'value="k"' in page.text
    no_name = {"name": " ", "scopes": "read", "expires_in_days": "7", **csrf_field(console)}
    page = await console.post("/console/settings/keys", data=no_name)
    assert page.status_code == 400 and 'id="name-error"' in page.text
    odd = {"name": "k", "scopes": "read", "expires_in_days": "3", **csrf_field(console)}
    page = await console.post("/console/settings/keys", data=odd)
    assert page.status_code == 400 and 'id="expires_in_days-error"' in page.text
    assert 'class="secret-once"' not in page.text
    async with resources.sessionmaker() as session:
        count = len(
            list(await session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant.id)))
        )
    assert count == 1  # the tenant's bootstrap key only


async def test_another_tenants_key_is_not_found_and_keeps_working(
    console: AsyncTestClient, client: AsyncTestClient, resources: Resources
) -> None:
    other = await make_tenant(resources)
    async with resources.sessionmaker() as session:
        key_id = await session.scalar(select(ApiKey.id).where(ApiKey.tenant_id == other.id))
    response = await console.post(
        f"/console/settings/keys/{key_id}/revoke", data=csrf_field(console)
    )
    assert response.status_code == 404
    assert (await client.get("/v1/runs", headers=other.headers)).status_code == 200
    listing = await console.get("/console/settings/keys")
    assert str(key_id) not in listing.text


async def test_a_post_without_the_csrf_token_is_refused(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    form = {"name": "forged", "scopes": "admin", "expires_in_days": "0"}
    assert (await console.post("/console/settings/keys", data=form)).status_code == 403
    wrong = {**form, "_csrf_token": "not-the-token"}
    assert (await console.post("/console/settings/keys", data=wrong)).status_code == 403
    invite = {"email": "forged@example.test", "role": "admin"}
    assert (await console.post("/console/settings/users", data=invite)).status_code == 403
    async with resources.sessionmaker() as session:
        assert await session.scalar(select(ApiKey).where(ApiKey.name == "forged")) is None
        assert await session.scalar(select(User).where(User.email == "forged@example.test")) is None


# -- provider secrets -------------------------------------------------------------------------


@pytest.fixture
async def operator_console(
    settings: Settings, embedder: Embedder, resources: Resources, console_user: ConsoleUser
) -> AsyncIterator[tuple[AsyncTestClient, SecretBox]]:
    """An admin of an operator tenant, on an instance that has secret keys. The secrets
    stored under its key go with it: they are the deployment's, not a tenant's, and later
    tests (``secrets rotate``) must not meet ciphertexts no configured key opens."""
    key = generate_key()
    console_settings = settings.console.model_copy(
        update={"operator_tenants": [console_user.tenant.name]}
    )
    configured = settings.model_copy(
        update={"secrets": SecretSettings(keys=[key]), "console": console_settings}
    )
    async with AsyncTestClient(app=create_app(configured, embedder=embedder)) as client:
        client.follow_redirects = False
        await logged_in(client, console_user)
        yield client, SecretBox([key])
    mine = SecretBox([key]).primary_key_id
    async with resources.sessionmaker() as session, session.begin():
        for info in await store.describe(session):
            if info.key_id == mine:
                await store.remove(session, info.name)


async def test_secrets_are_added_and_rotated_and_never_shown(
    operator_console: tuple[AsyncTestClient, SecretBox],
    resources: Resources,
    tenant: TenantKey,
    console_user: ConsoleUser,
) -> None:
    console, box = operator_console
    name = f"provider-{uuid.uuid4().hex[:8]}"
    first, second = f"sk-first-{uuid.uuid4().hex}", f"sk-second-{uuid.uuid4().hex}"
    page = await console.get("/console/settings/secrets")
    assert page.status_code == 200
    assert re.search(
        r'<input id="secret-value" name="value" type="password" autocomplete="off"', page.text
    )

    added = await console.post(
        "/console/settings/secrets", data={"name": name, "value": first, **csrf_field(console)}
    )
    assert added.status_code == 303, added.text
    assert first not in added.headers["location"]
    listing = await console.get(added.headers["location"])
    assert name in listing.text and first not in listing.text
    async with resources.sessionmaker() as session:
        assert await store.reveal(session, box, name) == first

    again = await console.post(
        "/console/settings/secrets", data={"name": name, "value": second, **csrf_field(console)}
    )
    assert again.status_code == 409 and 'id="name-error"' in again.text
    assert second not in again.text

    rotated = await console.post(
        f"/console/settings/secrets/{name}/rotate", data={"value": second, **csrf_field(console)}
    )
    assert rotated.status_code == 303
    async with resources.sessionmaker() as session:
        assert await store.reveal(session, box, name) == second
    missing = await console.post(
        "/console/settings/secrets/nobody-has-this/rotate",
        data={"value": second, **csrf_field(console)},
    )
    assert missing.status_code == 404
    empty = await console.post(
        f"/console/settings/secrets/{name}/rotate", data={"value": " ", **csrf_field(console)}
    )
    assert empty.status_code == 400

    for path in PAGES:
        text = (await console.get(f"/console/settings{path}")).text
        assert first not in text and second not in text

    events = await audit_actions(resources, tenant, "secret.")
    assert [(e[0], e[1], e[2]) for e in events] == [
        ("secret.set", f"user:{console_user.email}", f"secret:{name}"),
        ("secret.set", f"user:{console_user.email}", f"secret:{name}"),
    ]
    assert first not in str(events) and second not in str(events)


async def test_admins_of_other_tenants_cannot_touch_the_deployments_secrets(
    console: AsyncTestClient, resources: Resources
) -> None:
    page = await console.get("/console/settings/secrets")
    assert page.status_code == 200
    assert "only its operators manage them" in page.text
    assert 'name="value"' not in page.text
    name = f"stolen-{uuid.uuid4().hex[:6]}"
    refused = await console.post(
        "/console/settings/secrets", data={"name": name, "value": "x", **csrf_field(console)}
    )
    assert refused.status_code == 403


# -- users ------------------------------------------------------------------------------------


async def test_an_invited_user_sets_a_password_with_the_link_and_logs_in(
    console: AsyncTestClient, app_client: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.test"
    page = await console.post(
        "/console/settings/users", data={"email": email, "role": "editor", **csrf_field(console)}
    )
    assert page.status_code == 201, page.text
    assert "no-store" in page.headers["cache-control"]
    (url,) = re.findall(r'<code id="password-link">([^<]+)</code>', page.text)
    assert 'class="secret-once"' in page.text
    listing = await console.get("/console/settings/users")
    assert email in listing.text and url not in listing.text

    link = urlsplit(url.replace("&amp;", "&"))
    token = link.query.removeprefix("token=")
    await app_client.get(f"{link.path}?{link.query}")
    password = f"pw-{uuid.uuid4().hex}"
    done = await app_client.post(
        "/console/set-password",
        data={"token": token, "password": password, **csrf_field(app_client)},
    )
    assert done.status_code == 303, done.text
    await logged_in(app_client, ConsoleUser(tenant, email, password, "editor"))
    assert (await app_client.get("/console/settings")).status_code == 403  # an editor

    taken = await console.post(
        "/console/settings/users", data={"email": email, "role": "viewer", **csrf_field(console)}
    )
    assert taken.status_code == 409 and 'id="email-error"' in taken.text
    bad = await console.post(
        "/console/settings/users",
        data={"email": "not-an-email", "role": "viewer", **csrf_field(console)},
    )
    assert bad.status_code == 400 and 'id="email-error"' in bad.text


async def test_a_reissued_link_is_shown_once_and_ends_the_old_one(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    user = await make_user(resources, tenant, "viewer")
    user_id = await _user_id(resources, user.email)
    page = await console.post(f"/console/settings/users/{user_id}/link", data=csrf_field(console))
    assert page.status_code == 200
    (url,) = re.findall(r'<code id="password-link">([^<]+)</code>', page.text)
    assert user.email in page.text and "set-password?token=" in url
    assert "no-store" in page.headers["cache-control"]


async def test_a_role_change_applies_to_the_users_next_request_and_is_audited(
    console: AsyncTestClient,
    app_client: AsyncTestClient,
    resources: Resources,
    tenant: TenantKey,
    console_user: ConsoleUser,
) -> None:
    viewer = await make_user(resources, tenant, "viewer")
    await logged_in(app_client, viewer)
    assert (await app_client.get("/console/settings/keys")).status_code == 403
    viewer_id = await _user_id(resources, viewer.email)

    changed = await console.post(
        f"/console/settings/users/{viewer_id}/role", data={"role": "admin", **csrf_field(console)}
    )
    assert changed.status_code == 303
    assert (await app_client.get("/console/settings/keys")).status_code == 200
    changed = await console.post(
        f"/console/settings/users/{viewer_id}/role", data={"role": "viewer", **csrf_field(console)}
    )
    assert (await app_client.get("/console/settings/keys")).status_code == 403

    events = await audit_actions(resources, tenant, "user.role_changed")
    assert [(e[1], e[2], e[3]["before"], e[3]["after"]) for e in events] == [
        (f"user:{console_user.email}", f"user:{viewer.email}", "viewer", "admin"),
        (f"user:{console_user.email}", f"user:{viewer.email}", "admin", "viewer"),
    ]


async def test_disabling_a_user_ends_their_session_at_once(
    console: AsyncTestClient, app_client: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    admin = await make_user(resources, tenant, "admin")
    await logged_in(app_client, admin)
    assert (await app_client.get("/console/settings")).status_code == 200
    admin_id = await _user_id(resources, admin.email)

    disabled = await console.post(
        f"/console/settings/users/{admin_id}/disable", data=csrf_field(console)
    )
    assert disabled.status_code == 303
    assert disabled.headers["location"] == "/console/settings/users?done=disabled"
    refused = await app_client.get("/console/settings")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/console/login")
    assert await sessions_of(resources).delete_all(admin_id) == 0  # none left in Redis
    assert (await console_login(app_client, admin)).status_code == 401

    enabled = await console.post(
        f"/console/settings/users/{admin_id}/enable", data=csrf_field(console)
    )
    assert enabled.status_code == 303
    assert (await console_login(app_client, admin)).status_code == 303
    actions = [e[0] for e in await audit_actions(resources, tenant, "user.")]
    assert "user.disabled" in actions and "user.enabled" in actions


async def test_the_last_admin_is_kept(
    console: AsyncTestClient, resources: Resources, console_user: ConsoleUser
) -> None:
    me = await _user_id(resources, console_user.email)
    demoted = await console.post(
        f"/console/settings/users/{me}/role", data={"role": "viewer", **csrf_field(console)}
    )
    assert demoted.status_code == 409 and "last admin" in demoted.text
    disabled = await console.post(f"/console/settings/users/{me}/disable", data=csrf_field(console))
    assert disabled.status_code == 409 and "last admin" in disabled.text
    assert (await console.get("/console/settings/users")).status_code == 200  # still admin


async def test_another_tenants_users_are_not_found_and_not_listed(
    console: AsyncTestClient, resources: Resources
) -> None:
    other_tenant = await make_tenant(resources)
    other = await make_user(resources, other_tenant, "admin")
    other_id = await _user_id(resources, other.email)
    for action, data in (
        ("role", {"role": "viewer"}),
        ("disable", {}),
        ("enable", {}),
        ("link", {}),
    ):
        response = await console.post(
            f"/console/settings/users/{other_id}/{action}", data={**data, **csrf_field(console)}
        )
        assert response.status_code == 404, action
    listing = await console.get("/console/settings/users")
    assert other.email not in listing.text
    async with resources.sessionmaker() as session:
        row = await session.get(User, other_id)
    assert row is not None and row.role == "admin" and row.disabled_at is None


async def _user_id(resources: Resources, email: str) -> uuid.UUID:
    async with resources.sessionmaker() as session:
        user_id = await session.scalar(select(User.id).where(User.email == email))
    assert user_id is not None
    return user_id
