"""Liveness and readiness probes (not versioned: load balancers and orchestrators use them)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from myaiserv.health.schemas import Alive, NotReady, Ready
from myaiserv.health.service import ReadinessService
from myaiserv.problems import PROBLEM_JSON, problem
from myaiserv.resources import Resources


class HealthController(Controller):
    tags = ["health"]  # noqa: RUF012

    @get("/health", summary="Liveness")
    async def health(self) -> Alive:
        """The process answers. Says nothing about dependencies: see /ready."""
        return Alive(status="ok")

    @get("/metrics", summary="Prometheus metrics", media_type="text/plain; version=0.0.4")
    async def metrics(self, resources: NamedDependency[Resources]) -> Response[bytes]:
        """The instance's metrics in the Prometheus text format (every worker's, in
        multiprocess mode). Each scrape first runs the readiness checks, so
        ``myaiserv_dependency_up``, ``myaiserv_dependency_breaker_state`` and
        ``myaiserv_es_cluster_status`` are current."""
        from myaiserv.metrics import exposition

        await ReadinessService(
            es=resources.es,
            engine=resources.engine,
            redis=resources.redis,
            breakers=resources.breakers,
            timeout_s=resources.settings.readiness_timeout_s,
        ).check()

        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @get(
        "/ready",
        summary="Readiness",
        responses={
            200: ResponseSpec(
                Ready, description="Every dependency answers", generate_examples=False
            ),
            503: ResponseSpec(
                NotReady, description="Not ready", media_type=PROBLEM_JSON, generate_examples=False
            ),
        },
    )
    async def ready(
        self, request: Request[Any, Any, Any], resources: NamedDependency[Resources]
    ) -> Response[Any]:
        """200 when Elasticsearch, PostgreSQL and Redis all answer, else 503 naming the
        dependencies that failed."""
        service = ReadinessService(
            es=resources.es,
            engine=resources.engine,
            redis=resources.redis,
            breakers=resources.breakers,
            timeout_s=resources.settings.readiness_timeout_s,
        )
        results = await service.check()
        checks = {r.name: r.as_dict() for r in results}
        failed = [r.name for r in results if not r.ok]
        if not failed:
            return Response({"status": "ok", "checks": checks})
        return problem(
            request,
            503,
            "Not ready",
            f"unavailable: {', '.join(failed)}",
            extra={"status": "unavailable", "failing": failed, "checks": checks},
            headers={"Retry-After": "5"},
        )
