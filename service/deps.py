"""Dependencies the routes declare: the running services, the caller's tenant, a page.

All `async def`, though none awaits: FastAPI runs a plain `def` dependency in its thread
pool, one hand-off per dependency per request, and these only read memory.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.problems import Invalid, ProblemError
from service.runtime import Services
from service.tasks import TaskSender
from shears_config import Settings
from shears_config.api_keys import tenant_of
from storage import BlobStore, JobStore
from storage.ids import decode_cursor

DEFAULT_TENANT = "default"
MAX_PAGE = 200

_bearer = HTTPBearer(auto_error=False, description="An API key, when keys are configured.")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_store(services: ServicesDep) -> JobStore:
    return services.store


async def get_blobs(services: ServicesDep) -> BlobStore:
    return services.blobs


async def get_tasks(services: ServicesDep) -> TaskSender:
    return services.tasks


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
TasksDep = Annotated[TaskSender, Depends(get_tasks)]


async def current_tenant(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The tenant every store call is scoped to; the one place authentication lives.

    Without configured keys there is one tenant. With keys, each key maps to its tenant and
    another tenant's ids answer 404 (the stores make them indistinguishable from unknown).
    """
    if not settings.api_keys:
        return DEFAULT_TENANT
    presented = credentials.credentials if credentials else ""
    tenant = tenant_of(presented, settings.api_keys)  # keys are held as digests only
    if tenant is None:
        raise ProblemError(
            401,
            "unauthorized",
            "send `Authorization: Bearer <api key>` with a configured key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


TenantDep = Annotated[str, Depends(current_tenant)]


@dataclass(frozen=True)
class PageQuery:
    limit: int
    cursor: str | None


async def page_query(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageQuery:
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except ValueError as exc:
            raise Invalid("cursor", "not a cursor this service issued", "invalid_cursor") from exc
    return PageQuery(limit=limit, cursor=cursor)


PageDep = Annotated[PageQuery, Depends(page_query)]
