"""Rendering a console page: the template, plus what every page shows (who is logged in,
the navigation their role allows)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request
from litestar.response import Template
from markupsafe import Markup, escape

from myaiserv.auth.principal import Principal

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    href: str
    scope: str  # the scope a user needs to see it


NAV = (
    NavItem("overview", "Overview", "/console/overview", "read"),
    NavItem("runs", "Runs", "/console/runs", "read"),
    NavItem("documents", "Documents", "/console/documents", "read"),
    NavItem("playground", "Playground", "/console/playground", "read"),
    NavItem("prompts", "Prompts", "/console/prompts", "read"),
    NavItem("settings", "Settings", "/console/settings", "admin"),
)


@dataclass(frozen=True)
class Me:
    email: str
    role: str
    principal: Principal

    def can(self, scope: str) -> bool:
        return self.principal.allows(scope)


_MARK = re.compile(r"(</?mark>)")


def highlighted(fragment: str) -> Markup:
    """A highlight fragment of the API (HTML-escaped text with ``<mark>`` tags) as HTML
    holding no other markup: the text between the tags is read back to plain text (so it
    is not escaped twice) and escaped again by us, whatever it was; only ``<mark>`` and
    ``</mark>`` stay markup, and a fragment cut inside a mark is closed, never left open."""
    out: list[str] = []
    for part in _MARK.split(fragment):
        out.append(part if part in ("<mark>", "</mark>") else str(escape(html.unescape(part))))
    opened = out.count("<mark>") - out.count("</mark>")
    out.extend(["</mark>"] * max(opened, 0))
    return Markup("".join(out))  # noqa: S704 - every text part escaped above


def wants_json(request: Request[Any, Any, Any]) -> bool:
    """A script's request (it asks for JSON), not a browser's page load."""
    return "application/json" in request.headers.get("accept", "")


def environment() -> Environment:
    """Autoescaping on for every template (user text is escaped wherever it appears);
    an undefined name is an error, not an empty string."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
    )
    env.filters["when"] = _when
    env.filters["number"] = _number
    return env


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def _number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def page(
    request: Request[Any, Any, Any],
    name: str,
    *,
    section: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """Render ``name`` for the logged-in user (or for nobody, on the login pages)."""
    principal = request.scope.get("user")
    me = None
    if isinstance(principal, Principal) and principal.email is not None:
        me = Me(principal.email, getattr(request.auth, "role", ""), principal)
    nav = [item for item in NAV if me is not None and me.can(item.scope)]
    return Template(
        template_name=name,
        context={"me": me, "nav": nav, "section": section, "title": "", **context},
        status_code=status_code,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
