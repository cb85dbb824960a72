"""/metrics through prometheus_client: HTTP counters here, jobs and queues read at scrape time.

HTTP requests are counted by the API processes. With several API processes (`shears api
--workers`, service/cli.py) each writes its counts to PROMETHEUS_MULTIPROC_DIR and a scrape
adds them up, so every scrape sees the whole API whichever worker answers it. Jobs come from
the shared job store at scrape time (storage/metrics.py), since workers are other processes;
queue depth comes from the broker. Labels are bounded on purpose: route *template*, status,
error code from a closed set, stage name; never a job id or a tenant, so the number of
series stays fixed however many jobs run.
"""

import os
import time
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_schemas import JobStatus
from service.queue_depth import queue_depths
from service.runtime import Services
from shears_config import INSPECT_QUEUE, JOB_QUEUE
from storage.metrics import BUCKETS_S, JOB_ERROR_CODES, Histogram, JobMetrics, job_metrics

# The `_created` series would double the HTTP families for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_UNMATCHED = "unmatched"
# Clients choose the method string; anything unusual is one series, not one per spelling.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
QUEUES = (JOB_QUEUE, INSPECT_QUEUE)


class HttpMetrics:
    """Request counts and total seconds per (method, route template, status code)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self._count = Counter(
            "shears_http_requests",
            "HTTP requests, by method, route template and status.",
            labels,
            registry=self.registry,
        )
        self._seconds = Counter(
            "shears_http_request_seconds",
            "Time spent answering, by the same labels.",
            labels,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._count.labels(method, route, str(status)).inc()
        self._seconds.labels(method, route, str(status)).inc(seconds)

    def collector(self) -> Collector:
        """This process's counters, or every API process's when they share a folder."""
        folder = os.environ.get(MULTIPROC_ENV)
        if not folder:
            return self.registry
        return MultiProcessCollector(CollectorRegistry(auto_describe=True), folder)  # type: ignore[no-untyped-call]


class HttpMetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware), so streamed downloads pass through untouched."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe(http_method(scope), route_template(scope), status, elapsed)


def http_method(scope: Scope) -> str:
    method = str(scope["method"])
    return method if method in _METHODS else "other"


def route_template(scope: Scope) -> str:
    """`/v1/jobs/{job_id}`, never the path itself (ids, and whatever a client typed)."""
    route = scope.get("route")
    template = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return str(template) if template else _UNMATCHED


class StoreCollector(Collector):
    """The job store's and the broker's figures, read when Prometheus scrapes."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        jobs = job_metrics(self.services.database)
        yield from job_families(jobs)
        yield from queue_families(queue_depths(self.services.tasks, QUEUES))


def scrape(http: HttpMetrics, services: Services) -> bytes:
    """The whole exposition: blocking (database, broker), so call it from a worker thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(services))
    registry.register(http.collector())
    return generate_latest(registry)


def job_families(jobs: JobMetrics) -> Iterator[Metric]:
    by_status = GaugeMetricFamily(
        "shears_jobs", "Jobs in the job store, by status.", labels=["status"]
    )
    for status in JobStatus:
        by_status.add_metric([status.value], jobs.by_status.get(status.value, 0))
    yield by_status
    yield GaugeMetricFamily(
        "shears_jobs_queued", "Jobs queued in the job store.", value=jobs.by_status.get("queued", 0)
    )
    failed = GaugeMetricFamily(
        "shears_jobs_failed",
        "Failed jobs in the job store, by error code (`other`: a code outside the set).",
        labels=["code"],
    )
    for code, n in sorted(_codes(jobs).items()):
        failed.add_metric([code], n)
    yield failed
    yield _histogram(
        "shears_job_stage_duration_seconds",
        "Seconds finished jobs spent per stage (final attempt; `queued` until first claimed).",
        "stage",
        jobs.stage_seconds,
    )
    yield _histogram(
        "shears_job_duration_seconds",
        "Seconds from a job's first claim to its end, by final status.",
        "status",
        jobs.run_seconds,
    )


def queue_families(depths: Mapping[str, int] | None) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "shears_queue_depth_up",
        "1 when the broker answered the queue depth query of this scrape, else 0.",
        value=0 if depths is None else 1,
    )
    if depths is None:
        return
    family = GaugeMetricFamily(
        "shears_queue_depth",
        "Messages waiting in the broker, by queue (not yet taken by a worker).",
        labels=["queue"],
    )
    for queue, n in sorted(depths.items()):
        family.add_metric([queue], n)
    yield family


def _codes(jobs: JobMetrics) -> dict[str, int]:
    """Every known code, zeros included, so a rate over a code that appears later works."""
    return {**dict.fromkeys(JOB_ERROR_CODES, 0), **jobs.failed_by_code}


def _histogram(
    name: str, help_text: str, label: str, histograms: Mapping[str, Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=[label])
    bounds = [f"{b:g}" for b in BUCKETS_S] + ["+Inf"]
    for value, histogram in sorted(histograms.items()):
        buckets = list(zip(bounds, histogram.cumulative(), strict=True))
        family.add_metric([value], buckets, histogram.total)
    return family
