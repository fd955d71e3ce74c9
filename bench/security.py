"""Security figures: schemathesis over the OpenAPI document (authenticated, every
operation, SECURITY_EXAMPLES examples each, default 30; checks: no server error, status
codes, content types and bodies as documented), the hostile-input corpus in every text
field (plus raw bodies and header injection), and the two-tenant isolation sweep, against
a real `myaiserv serve` and indexer on the benchmark database.
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
from sqlalchemy import func, select

from bench import report
from bench.common import bench_settings, prepare_database
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.db.models import OutboxEvent
from myaiserv.evaluation.harness import local_api
from tooling.fuzz import run_schemathesis
from tooling.hostile import probe, seed
from tooling.isolation import two_tenant_sweep

DB = "myaiserv_bench_security"
REDIS_DB = 6
PREFIX = "benchsecurity"
EXAMPLES = int(os.environ.get("SECURITY_EXAMPLES", "30"))


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    env["MYAISERV_LLM__RATE_LIMIT_PER_MINUTE"] = "0"
    await prepare_database(settings, fresh=True)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)

    async def admin_key(name: str) -> str:
        from myaiserv.auth.service import TenantService

        async with sessions() as session, session.begin():
            issued = await TenantService(session).create_tenant(
                name, scopes=["read", "write", "admin"]
            )
        return issued.plaintext

    try:
        fuzz_key, hostile_key = await admin_key("fuzz"), await admin_key("hostile")
        a_key, b_key = await admin_key("tenant-a"), await admin_key("tenant-b")
        async with local_api(env) as (url, _):
            fuzz = await asyncio.to_thread(run_schemathesis, url, fuzz_key, max_examples=EXAMPLES)
            async with httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {hostile_key}"}, timeout=120
            ) as http:
                hostile = await probe(http, await seed(http))

            async def indexed() -> None:
                for _ in range(240):
                    async with sessions() as session:
                        if not await session.scalar(select(func.count(OutboxEvent.id))):
                            return
                    await asyncio.sleep(0.5)

            async with (
                httpx.AsyncClient(
                    base_url=url, headers={"Authorization": f"Bearer {a_key}"}, timeout=60
                ) as a,
                httpx.AsyncClient(
                    base_url=url, headers={"Authorization": f"Bearer {b_key}"}, timeout=60
                ) as b,
            ):
                isolation = await two_tenant_sweep(a, b, settle=indexed)
    finally:
        await engine.dispose()
    figures = {
        "schemathesis_cases": fuzz.cases,
        "schemathesis_5xx": fuzz.server_errors,
        "schemathesis_failures": fuzz.failures,
        "schemathesis_examples_per_operation": EXAMPLES,
        "hostile_inputs_tried": hostile.tried,
        "hostile_input_failures": hostile.failures,
        "hostile_by_status": {str(k): v for k, v in sorted(hostile.by_status.items())},
        "cross_tenant_checks": isolation.checks,
        "cross_tenant_leaks": len(isolation.leaks),
        "cross_tenant_leak_detail": isolation.leaks,
    }
    report.save("security", figures, {"how": __doc__.strip() if __doc__ else ""})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
