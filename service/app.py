"""The FastAPI application: `create_app(settings)`; uvicorn runs it (`shears api`)."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from service.docs_page import install_docs_page
from service.limits import BodyLimit
from service.metrics import HttpMetrics, HttpMetricsMiddleware
from service.openapi import install_openapi
from service.problems import install_problem_handlers
from service.reconciler import Reconciler
from service.request_id import RequestContext
from service.routes import ROUTERS, STREAMED_UPLOADS
from service.runtime import Services
from service.secret_box import secret_box
from service.tasks import TaskSender
from service.webhook_docs import install_webhook_docs
from service.webhooks import WebhookDispatcher
from shears_config import Settings, get_settings
from storage import JobStore, connect, open_blob_store

log = logging.getLogger("shears.api")

DESCRIPTION = """Prune ONNX and TorchScript models over HTTP.

Upload a model, create a job with a PruneSpec, follow its progress and events, then fetch
the pruned model and a report measured on it. Errors are RFC 9457 `application/problem+json`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Shears",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lambda app: _lifespan(app, settings),
        docs_url=None,  # served from local files by install_docs_page: no CDN
        redoc_url=None,
    )
    for router in ROUTERS:
        app.include_router(router)
    install_problem_handlers(app)
    install_openapi(app)
    install_webhook_docs(app)
    install_docs_page(app)
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(BodyLimit, exempt=STREAMED_UPLOADS)
    # Pruned weights are mostly zeros: a client that accepts gzip gets artifacts several
    # times smaller on the wire (the report states each artifact's zip and zstd sizes).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    app.add_middleware(HttpMetricsMiddleware, metrics=app.state.http_metrics)
    # Outermost: the request id is set before anything inside may log.
    app.add_middleware(RequestContext)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    services = _open_services(settings)
    app.state.services = services
    _keep_start_up_out_of_the_collector()
    reconciler = Reconciler(services.store, services.tasks, settings)
    reconciling = asyncio.create_task(reconciler.run_forever(), name="shears-reconciler")
    dispatcher = WebhookDispatcher(services.store, settings, services.secrets)
    dispatching = asyncio.create_task(dispatcher.run_forever(), name="shears-webhooks")
    try:
        yield
    finally:
        for task in (reconciling, dispatching):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        services.tasks.close()
        services.database.engine.dispose()


def _open_services(settings: Settings) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # SQLite creates files, not folders
    database = connect(settings.resolved_database_url)
    blobs = open_blob_store(settings.blob_url, settings.blob_dir, settings.s3_endpoint_url)
    removed = blobs.clear_partial_uploads(settings.stale_upload_s)
    if removed:
        log.info("removed %d partial upload(s) left by an earlier crash", removed)
    return Services(
        settings=settings,
        database=database,
        store=JobStore(database),
        blobs=blobs,
        tasks=TaskSender(settings),
        secrets=secret_box(settings),
    )


def _keep_start_up_out_of_the_collector() -> None:
    """What start-up made (routes, pydantic validators, SQLAlchemy's and Celery's state) lives
    as long as the process: frozen, a full collection no longer walks it. Under a burst of
    createJob those walks stalled every request in flight for 100-200 ms (p99 275 -> 147 ms
    at 50 clients; docs/benchmarks.md, "Load: createJob burst")."""
    gc.collect()
    gc.freeze()
