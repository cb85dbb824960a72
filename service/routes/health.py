"""Liveness, readiness and metrics: for orchestrators and Prometheus, not for clients."""

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict

from service import metrics
from service.deps import ServicesDep
from service.problems import problem_response, problems
from service.readiness import Readiness, check_readiness

router = APIRouter(tags=["health"])


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


@router.get("/healthz", operation_id="health", summary="Liveness: the process answers")
def health() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="readiness",
    summary="Readiness: database, blob store and broker answer",
    response_model=Readiness,
    responses=problems(503),
)
async def readiness(services: ServicesDep) -> JSONResponse | Readiness:
    result = await check_readiness(services)
    if result.status == "ready":
        return result
    failed = "; ".join(f"{name}: {why}" for name, why in result.checks.items() if why != "ok")
    return problem_response(
        503, f"not ready: {failed}", "not_ready", extra={"checks": result.checks}
    )


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics: jobs by status, HTTP requests by route and status",
    response_class=PlainTextResponse,
)
def prometheus_metrics(request: Request, services: ServicesDep) -> PlainTextResponse:
    text = metrics.scrape(request.app.state.http_metrics, services)
    return PlainTextResponse(text, media_type=metrics.CONTENT_TYPE)
