"""/readyz: can this process serve requests now? Database, blob store and broker, each with
a short timeout, so a load balancer learns of an outage in seconds."""

import asyncio
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from service.problems import BrokerUnavailable
from service.runtime import Services

CHECK_TIMEOUT_S = 5.0


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": {"database": "ok", "blob_store": "ok", "broker": "ok"},
                }
            ]
        }
    )

    status: str
    checks: dict[str, str]


async def check_readiness(services: Services) -> Readiness:
    checks: dict[str, Callable[[], None]] = {
        "database": services.database.ping,
        "blob_store": services.blobs.ping,
        "broker": services.tasks.ping,
    }
    results = await asyncio.gather(*(_run(check) for check in checks.values()))
    return Readiness(
        status="ready" if all(r == "ok" for r in results) else "unavailable",
        checks=dict(zip(checks, results, strict=True)),
    )


async def _run(check: Callable[[], None]) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(check), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:.0f}s"
    except BrokerUnavailable as exc:
        return exc.reason
    except Exception as exc:  # any failure of a dependency means "not ready", with why
        return f"{type(exc).__name__}: {exc}"[:300]
    return "ok"
