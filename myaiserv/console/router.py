"""The console, mounted on the API's app: its routes, its session authentication, its
CSRF protection, its templates and static files, and its error pages.

Errors are rendered by the API's own handlers (one mapping from exception to status) and
then shown as a page; a request that asks for JSON (the console's scripts) gets the
problem+json itself. A page without a session redirects to the login page.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, Router, get
from litestar.config.csrf import CSRFConfig
from litestar.middleware.base import DefineMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

from myaiserv.config import Settings
from myaiserv.console.auth import ConsoleAuthController, ConsoleLogoutController
from myaiserv.console.documents import ConsoleChunksController, ConsoleDocumentsController
from myaiserv.console.middleware import LoginRequiredError, SessionAuthenticationMiddleware
from myaiserv.console.overview import OverviewController, UsageAuditController
from myaiserv.console.pages import STATIC, environment, page, wants_json
from myaiserv.console.playground import PlaygroundController
from myaiserv.console.prompts import ConsolePromptController
from myaiserv.console.runs import ConsoleRunsController
from myaiserv.console.settings import SettingsController
from myaiserv.problems import exception_handlers as api_handlers

ExceptionHandler = Callable[[Request[Any, Any, Any], Any], Response[Any]]
CSRF_COOKIE = "myaiserv_csrf"
CSRF_HEADER = "x-csrftoken"
# Security headers of console responses (the API's forbid loading anything at all).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@get("/", include_in_schema=False)
async def home() -> Redirect:
    return Redirect("/console/overview", status_code=303)


def _as_page(handler: ExceptionHandler) -> ExceptionHandler:
    def render(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if isinstance(exc, LoginRequiredError) and request.method in ("GET", "HEAD"):
            return Redirect(exc.login_url, status_code=303)
        problem = handler(request, exc)
        if wants_json(request):
            return problem
        body = problem.content if isinstance(problem.content, dict) else {}
        return page(
            request,
            "error.html",
            title=str(body.get("title", "Error")),
            status=problem.status_code,
            detail=str(body.get("detail", "")),
            retry_after=problem.headers.get("Retry-After", ""),
            status_code=problem.status_code or 500,
            headers=dict(problem.headers),
        )

    return render


# The pages, each a controller of its domain's console module.
PAGES: list[ControllerRouterHandler] = [
    SettingsController,
    ConsolePromptController,
    PlaygroundController,
    OverviewController,
    UsageAuditController,
    ConsoleRunsController,
    ConsoleDocumentsController,
    ConsoleChunksController,
]


def console_routes() -> list[ControllerRouterHandler]:
    """The console's routers: the open doors (login, set password, static files), and the
    pages plus logout behind a session."""
    handlers: dict[int | type[Exception], ExceptionHandler] = {
        exc: _as_page(handler) for exc, handler in api_handlers.items()
    }
    return [
        Router(
            path="/console",
            route_handlers=[ConsoleAuthController],
            exception_handlers=handlers,
        ),
        Router(
            path="/console",
            route_handlers=[home, ConsoleLogoutController, *PAGES],
            middleware=[DefineMiddleware(SessionAuthenticationMiddleware)],
            exception_handlers=handlers,
        ),
        create_static_files_router(
            path="/console/static", directories=[STATIC], include_in_schema=False
        ),
    ]


def templates() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        engine=JinjaTemplateEngine.from_environment(environment()),
    )


def csrf(settings: Settings) -> CSRFConfig:
    """Signed double-submit tokens on every console form and script request (the API's
    keys are not cookies, so /v1 and /mcp need none)."""
    secret = settings.console.secret
    key = (
        secret.get_secret_value()
        if secret is not None
        else hmac.new(
            settings.database_url.encode(), b"myaiserv console csrf", hashlib.sha256
        ).hexdigest()
    )
    return CSRFConfig(
        secret=key,
        cookie_name=CSRF_COOKIE,
        cookie_path="/console",
        cookie_httponly=True,
        cookie_samesite="lax",
        cookie_secure=settings.console.public_url.startswith("https://"),
        header_name=CSRF_HEADER,
        exclude=[
            r"^/v1/",
            r"^/mcp(/|$)",
            r"^/(health|ready|metrics)$",
            r"^/schema",
            r"^/console/static/",
        ],
    )
