"""The application factory.

``create_app(settings)`` builds a Litestar app whose lifespan opens the process's clients
(``myaiserv.resources``) and hands them out through dependency injection.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from myaiserv import __version__
from myaiserv.config import Settings, load_settings
from myaiserv.errors import exception_handlers
from myaiserv.health.controller import HealthController
from myaiserv.logging import configure_logging, get_logger
from myaiserv.resources import Resources, open_resources

log = get_logger(__name__)


def _resources(state: State) -> Resources:
    return state.resources


def _instance_header(name: str):
    """Name the answering instance on every response (load-balancing is then visible)."""
    value = name.encode()

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send_with_header(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), (b"x-instance", value)]
                await send(message)

            await app(scope, receive, send_with_header)

        return wrapped

    return middleware


def create_app(settings: Settings) -> Litestar:
    instance = settings.instance_name or f"{socket.gethostname()}:{settings.port}"

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.resources = resources
            log.info("started", instance=instance, pid=os.getpid(), es=settings.es_url)
            yield
            log.info("stopping", instance=instance, pid=os.getpid())

    return Litestar(
        route_handlers=[HealthController],
        lifespan=[lifespan],
        dependencies={"resources": Provide(_resources, sync_to_thread=False)},
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        middleware=[_instance_header(instance)],
        openapi_config=OpenAPIConfig(
            title="MyAIServ",
            version=__version__,
            description="Search and retrieval-augmented generation over your LLM data.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        debug=settings.debug,
        logging_config=None,  # logging is configured once per process (myaiserv.logging)
        state=State({"settings": settings}),
    )


def create_app_from_env() -> Litestar:
    """Entry point for ASGI servers (``uvicorn --factory``): settings from the environment."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
