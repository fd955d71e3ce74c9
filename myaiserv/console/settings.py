"""Settings (admins only): the tenant's API keys, the deployment's provider secrets, and
the tenant's console users, on the services the API and the CLI use.

What is shown once (a new key, a one-time password link) is in the POST's own response,
never in a URL or the session, and that response is not stored (``no-store``). Every
other change answers with a redirect (post/redirect/get) and a notice named in the query.
Provider secrets serve every tenant, so only admins of ``console.operator_tenants`` may
change them here.

One module, longer than most, for three pages of small handlers: they share the admin
guard, the shown-once responses and the form-error shaping; split it per page if it grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.controller import KeyCreate
from myaiserv.auth.keys import SCOPES
from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.auth.service import TenantService
from myaiserv.console.auth import FORM
from myaiserv.console.login import sessions_of
from myaiserv.console.pages import page
from myaiserv.errors import AppError, ConflictError
from myaiserv.kit.deps import client_ip
from myaiserv.kit.validation import InvalidInputError
from myaiserv.resources import Resources
from myaiserv.secrets.box import SecretBox, SecretsError
from myaiserv.secrets.service import SecretService
from myaiserv.users.service import ROLES, UserService

SECTION = "settings"
EXPIRY_DAYS = (0, 7, 30, 90, 365)  # 0: never
SETTINGS_PAGES = (
    ("keys", "API keys", "Issue keys for programs that call the API, and revoke them."),
    ("secrets", "Provider secrets", "The LLM providers' API keys, encrypted at rest."),
    ("users", "Users", "Invite people, change their roles, disable them."),
    ("usage", "Usage and quotas", "Tokens and cost per day against the tenant's quota."),
    ("audit", "Audit log", "Who changed what, and when."),
)
# The notices a redirect names (never user text in a URL).
NOTICES = {
    "revoked": "The key is revoked: requests with it are refused from now on.",
    "added": "The secret is stored, encrypted. Its value will not be shown again.",
    "rotated": "The new value is stored, encrypted; every instance uses it within a minute.",
    "reencrypted": "Every secret is now encrypted under the current key.",
    "role": "The role is changed: it applies from the user's next request.",
    "disabled": "The user is disabled and their sessions are ended.",
    "enabled": "The user is enabled again.",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass
class RoleForm:
    role: str = ""


@dataclass
class SecretForm:
    name: str = ""
    value: str = ""


@dataclass
class ValueForm:
    value: str = ""


@dataclass
class InviteForm:
    email: str = ""
    role: str = "viewer"


def _errors(exc: Exception) -> dict[str, str]:
    """A form's errors by field, from the services' errors or the API's msgspec schema."""
    if isinstance(exc, InvalidInputError):
        return {exc.field: exc.message}
    if isinstance(exc, msgspec.ValidationError):
        message, _, where = str(exc).partition(" - at `$.")
        field = where.split("`")[0].split("[")[0] or "form"
        return {field: message}
    if isinstance(exc, AppError):
        return {"form": exc.detail}
    return {"form": str(exc)}


def _tenant_service(
    principal: Principal, request: Request[Any, Any, Any], db: AsyncSession
) -> TenantService:
    return TenantService(db, actor=principal.actor, ip=client_ip(request))


def _user_service(
    principal: Principal, request: Request[Any, Any, Any], db: AsyncSession, resources: Resources
) -> UserService:
    return UserService(db, resources.settings.console, actor=principal.actor, ip=client_ip(request))


async def _is_operator(principal: Principal, resources: Resources, db: AsyncSession) -> bool:
    operators = resources.settings.console.operator_tenants
    if not operators:
        return False
    return await TenantService(db).tenant_name(principal.tenant_id) in operators


class SettingsController(Controller):
    path = "/settings"
    include_in_schema = False
    guards = [requires("admin")]  # noqa: RUF012

    @get("/")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        return page(
            request, "settings/index.html", section=SECTION, title="Settings", pages=SETTINGS_PAGES
        )

    # -- API keys ------------------------------------------------------------------------

    async def _keys_page(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db: AsyncSession,
        *,
        status_code: int = 200,
        issued: Any = None,
        errors: dict[str, str] | None = None,
        form: dict[str, Any] | None = None,
        notice: str = "",
    ) -> Template:
        rows = await TenantService(db).list_keys(principal.tenant_id)
        return page(
            request,
            "settings/keys.html",
            section=SECTION,
            title="API keys",
            status_code=status_code,
            headers=NO_STORE,
            keys=list(reversed(rows)),  # newest first
            scopes=SCOPES,
            expiry_days=EXPIRY_DAYS,
            issued=issued,
            errors=errors or {},
            form=form or {"name": "", "scopes": ["read"], "expires_in_days": 90},
            notice=notice,
        )

    @get("/keys")
    async def keys(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        done: str = "",
    ) -> Template:
        return await self._keys_page(request, principal, db_session, notice=NOTICES.get(done, ""))

    @post("/keys", status_code=201)
    async def create_key(
        self, request: Request[Any, Any, Any], principal: Principal, db_session: AsyncSession
    ) -> Template:
        """The new key is in this response only (no redirect: it must be in no URL)."""
        form = await request.form()
        scopes = [s for s in form.getall("scopes", []) if isinstance(s, str)]
        name = str(form.get("name", "")).strip()
        days_text = str(form.get("expires_in_days", "0"))
        shown = {"name": name, "scopes": scopes, "expires_in_days": days_text}
        try:
            days = int(days_text) if days_text.isdigit() else -1
            if days not in EXPIRY_DAYS:
                raise InvalidInputError("expires_in_days", "choose one of the options")
            expires = datetime.now(UTC) + timedelta(days=days) if days else None
            data = msgspec.convert(
                {"name": name, "scopes": scopes, "expires_at": expires}, KeyCreate
            )
            issued = await _tenant_service(principal, request, db_session).create_key_for(
                principal.tenant_id,
                scopes=data.scopes,
                key_name=data.name,
                expires_at=data.expires_at,
            )
        except (InvalidInputError, msgspec.ValidationError) as exc:
            return await self._keys_page(
                request, principal, db_session, status_code=400, errors=_errors(exc), form=shown
            )
        return await self._keys_page(request, principal, db_session, status_code=201, issued=issued)

    @post("/keys/{key_id:uuid}/revoke", status_code=303)
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        key_id: UUID,
    ) -> Redirect:
        await _tenant_service(principal, request, db_session).revoke(principal.tenant_id, key_id)
        return Redirect("/console/settings/keys?done=revoked", status_code=303)

    # -- provider secrets ----------------------------------------------------------------

    async def _secrets_page(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db: AsyncSession,
        resources: Resources,
        *,
        status_code: int = 200,
        errors: dict[str, str] | None = None,
        name: str = "",
        notice: str = "",
    ) -> Template:
        operator = await _is_operator(principal, resources, db)
        problem, rows, primary = "", [], ""
        if operator:
            try:
                box = _box(resources)
                primary = box.primary_key_id
                rows = await SecretService(db, box).list()
            except SecretsError as exc:
                problem = str(exc)
        return page(
            request,
            "settings/secrets.html",
            section=SECTION,
            title="Provider secrets",
            status_code=status_code,
            headers=NO_STORE,
            operator=operator,
            problem=problem,
            secrets=rows,
            primary=primary,
            errors=errors or {},
            secret_name=name,
            notice=notice,
        )

    async def _secret_service(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db: AsyncSession,
        resources: Resources,
    ) -> SecretService:
        if not await _is_operator(principal, resources, db):
            raise PermissionDeniedException(
                "Provider secrets serve every tenant: only the deployment's operators "
                "change them (console.operator_tenants, or `myaiserv secrets`)."
            )
        try:
            box = _box(resources)
        except SecretsError as exc:
            raise ConflictError(str(exc)) from None
        return SecretService(
            db, box, actor=principal.actor, tenant_id=principal.tenant_id, ip=client_ip(request)
        )

    @get("/secrets")
    async def secrets(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        done: str = "",
    ) -> Template:
        return await self._secrets_page(
            request, principal, db_session, resources, notice=NOTICES.get(done, "")
        )

    @post("/secrets", status_code=303)
    async def add_secret(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        data: Annotated[SecretForm, FORM],
    ) -> Redirect | Template:
        service = await self._secret_service(request, principal, db_session, resources)
        try:
            await service.add(data.name, data.value)
        except (InvalidInputError, ConflictError) as exc:
            errors = _errors(exc)
            if isinstance(exc, ConflictError):
                errors = {"name": exc.detail}
            return await self._secrets_page(
                request,
                principal,
                db_session,
                resources,
                status_code=409 if isinstance(exc, ConflictError) else 400,
                errors=errors,
                name=data.name,
            )
        return Redirect("/console/settings/secrets?done=added", status_code=303)

    @post("/secrets/{name:str}/rotate", status_code=303)
    async def rotate_secret(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        name: str,
        data: Annotated[ValueForm, FORM],
    ) -> Redirect | Template:
        service = await self._secret_service(request, principal, db_session, resources)
        try:
            await service.replace(name, data.value)
        except InvalidInputError as exc:
            return await self._secrets_page(
                request,
                principal,
                db_session,
                resources,
                status_code=400,
                errors={f"value:{name}": exc.message},
            )
        return Redirect("/console/settings/secrets?done=rotated", status_code=303)

    @post("/secrets/reencrypt", status_code=303)
    async def reencrypt_secrets(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
    ) -> Redirect:
        service = await self._secret_service(request, principal, db_session, resources)
        await service.reencrypt()
        return Redirect("/console/settings/secrets?done=reencrypted", status_code=303)

    # -- users ---------------------------------------------------------------------------

    async def _users_page(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db: AsyncSession,
        resources: Resources,
        *,
        status_code: int = 200,
        link: Any = None,
        errors: dict[str, str] | None = None,
        form: InviteForm | None = None,
        notice: str = "",
    ) -> Template:
        users = await UserService(db, resources.settings.console).list(principal.tenant_id)
        return page(
            request,
            "settings/users.html",
            section=SECTION,
            title="Users",
            status_code=status_code,
            headers=NO_STORE,
            users=users,
            roles=ROLES,
            link=link,
            errors=errors or {},
            form=form or InviteForm(),
            notice=notice,
            my_id=principal.user_id,
        )

    @get("/users")
    async def users(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        done: str = "",
    ) -> Template:
        return await self._users_page(
            request, principal, db_session, resources, notice=NOTICES.get(done, "")
        )

    @post("/users", status_code=201)
    async def invite(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        data: Annotated[InviteForm, FORM],
    ) -> Template:
        """The one-time link is in this response only."""
        service = _user_service(principal, request, db_session, resources)
        try:
            link = await service.invite(principal.tenant_id, data.email, data.role)
        except (InvalidInputError, ConflictError) as exc:
            errors = _errors(exc)
            if isinstance(exc, ConflictError):
                errors = {"email": exc.detail}
            return await self._users_page(
                request,
                principal,
                db_session,
                resources,
                status_code=409 if isinstance(exc, ConflictError) else 400,
                errors=errors,
                form=data,
            )
        return await self._users_page(
            request, principal, db_session, resources, status_code=201, link=link
        )

    @post("/users/{user_id:uuid}/link", status_code=200)
    async def reissue_link(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        user_id: UUID,
    ) -> Template:
        service = _user_service(principal, request, db_session, resources)
        link = await service.reissue_link(principal.tenant_id, user_id)
        return await self._users_page(request, principal, db_session, resources, link=link)

    @post("/users/{user_id:uuid}/role", status_code=303)
    async def set_role(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        user_id: UUID,
        data: Annotated[RoleForm, FORM],
    ) -> Redirect | Template:
        """Audited by the service; the user's next request reads the new role."""
        service = _user_service(principal, request, db_session, resources)
        try:
            await service.set_role(principal.tenant_id, user_id, data.role)
        except (InvalidInputError, ConflictError) as exc:
            return await self._users_page(
                request,
                principal,
                db_session,
                resources,
                status_code=409 if isinstance(exc, ConflictError) else 400,
                errors={"form": exc.detail},
            )
        return Redirect("/console/settings/users?done=role", status_code=303)

    @post("/users/{user_id:uuid}/disable", status_code=303)
    async def disable(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        user_id: UUID,
    ) -> Redirect | Template:
        """The user's sessions end on every instance at once (they live in Redis)."""
        service = _user_service(principal, request, db_session, resources)
        try:
            await service.set_disabled(principal.tenant_id, user_id, True)
        except ConflictError as exc:
            return await self._users_page(
                request,
                principal,
                db_session,
                resources,
                status_code=exc.status_code,
                errors={"form": exc.detail},
            )
        # A login racing this finds the user disabled at its first request (the middleware
        # reads the row every time).
        await sessions_of(resources).delete_all(user_id)
        return Redirect("/console/settings/users?done=disabled", status_code=303)

    @post("/users/{user_id:uuid}/enable", status_code=303)
    async def enable(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        user_id: UUID,
    ) -> Redirect:
        service = _user_service(principal, request, db_session, resources)
        await service.set_disabled(principal.tenant_id, user_id, False)
        return Redirect("/console/settings/users?done=enabled", status_code=303)


def _box(resources: Resources) -> SecretBox:
    return SecretBox([k.get_secret_value() for k in resources.settings.secrets.keys])
