"""The console's doors: log in, log out, and set a password from a one-time link. These
pages are open (no session yet); their forms carry CSRF tokens like every other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Response, Template

from myaiserv.auth.ratelimit import RateLimitedError
from myaiserv.console.login import LoginRefusedError, LoginService, sessions_of
from myaiserv.console.middleware import ConsoleAuth
from myaiserv.console.pages import page
from myaiserv.console.sessions import COOKIE
from myaiserv.kit.deps import client_ip
from myaiserv.kit.validation import InvalidInputError
from myaiserv.resources import Resources
from myaiserv.users import passwords
from myaiserv.users.service import UserService

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclass
class LoginForm:
    email: str = ""
    password: str = ""
    next: str = ""


@dataclass
class PasswordForm:
    token: str = ""
    password: str = ""


def safe_next(target: str) -> str:
    """Only a console path of ours: never another site (``//evil``, ``/\\evil``)."""
    if (
        target.startswith("/console")
        and not target.startswith(("//", "/\\"))
        and "\\" not in target
    ):
        return target
    return "/console/"


def _cookie(
    resources: Resources, request: Request[Any, Any, Any], value: str, max_age: int | None
) -> Cookie:
    secure = request.url.scheme == "https" or resources.settings.console.public_url.startswith(
        "https://"
    )
    return Cookie(
        key=COOKIE,
        value=value,
        path="/console",
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=max_age,
    )


class ConsoleAuthController(Controller):
    path = "/"
    include_in_schema = False

    @get("/login")
    async def login_page(
        self, request: Request[Any, Any, Any], next: str = "", done: str = ""
    ) -> Template:
        notice = "Your password is set: log in with it." if done == "password" else ""
        return page(
            request,
            "login.html",
            title="Log in",
            next=safe_next(next),
            email="",
            notice=notice,
            error="",
        )

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        resources: Resources,
        data: Annotated[LoginForm, FORM],
    ) -> Response[Any]:
        """A new session id at every login (no fixation): the old one, if any, ends."""
        service = LoginService(resources, client_ip(request))
        target = safe_next(data.next)

        def again(status: int, error: str, headers: dict[str, str] | None = None) -> Template:
            return page(
                request,
                "login.html",
                title="Log in",
                status_code=status,
                headers=headers,
                next=target,
                email=data.email,
                error=error,
                notice="",
            )

        try:
            logged_in = await service.login(data.email, data.password)
        except LoginRefusedError:
            return again(401, "Wrong email or password.")
        except RateLimitedError as exc:
            return again(429, exc.detail, exc.headers)
        old = request.cookies.get(COOKIE)
        if old:
            session = await sessions_of(resources).get(old)
            if session is not None:
                await sessions_of(resources).delete(old, session.user_id)
        return Redirect(
            target,
            status_code=303,
            cookies=[_cookie(resources, request, logged_in.session_id, None)],
        )

    @get("/set-password")
    async def password_page(self, request: Request[Any, Any, Any], token: str = "") -> Template:
        return page(
            request,
            "set_password.html",
            title="Choose your password",
            token=token,
            min_length=passwords.MIN_LENGTH,
            error="",
        )

    @post("/set-password", status_code=303)
    async def set_password(
        self,
        request: Request[Any, Any, Any],
        resources: Resources,
        data: Annotated[PasswordForm, FORM],
    ) -> Response[Any]:
        try:
            async with resources.sessionmaker() as session, session.begin():
                users = UserService(session, resources.settings.console, ip=client_ip(request))
                user = await users.set_password(data.token, data.password)
        except InvalidInputError as exc:
            return page(
                request,
                "set_password.html",
                title="Choose your password",
                status_code=400,
                token=data.token,
                min_length=passwords.MIN_LENGTH,
                error=exc.detail,
            )
        await sessions_of(resources).delete_all(user.id)  # a new password ends old sessions
        return Redirect("/console/login?done=password", status_code=303)


class ConsoleLogoutController(Controller):
    """Behind the session middleware: logging out needs the session it ends."""

    path = "/"
    include_in_schema = False

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any], resources: Resources) -> Redirect:
        auth: ConsoleAuth = request.auth
        principal = request.user
        await LoginService(resources, client_ip(request)).logout(
            auth.session_id, principal.user_id, principal.tenant_id, principal.email
        )
        return Redirect(
            "/console/login", status_code=303, cookies=[_cookie(resources, request, "", 0)]
        )
