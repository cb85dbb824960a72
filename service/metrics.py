"""Prometheus text exposition, written by hand: a few families do not need a library.

HTTP requests are counted in this process (each API replica is scraped on its own). Jobs
come from the shared job store at scrape time (storage/metrics.py), since workers are other
processes; queue depth comes from the broker. Labels are bounded on purpose: route
*template*, status, error code from a closed set, stage name; never a job id or a tenant,
so the number of series stays fixed however many jobs run.
"""

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_schemas import JobStatus
from service.queue_depth import queue_depths
from service.runtime import Services
from shears_config import INSPECT_QUEUE, JOB_QUEUE
from storage.metrics import BUCKETS_S, JOB_ERROR_CODES, Histogram, JobMetrics, job_metrics

_UNMATCHED = "unmatched"
# Clients choose the method string; anything unusual is one series, not one per spelling.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
QUEUES = (JOB_QUEUE, INSPECT_QUEUE)


class HttpMetrics:
    """Request counts and total seconds per (method, route template, status code)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str, int], int] = defaultdict(int)
        self._seconds: dict[tuple[str, str, int], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        with self._lock:
            self._count[key] += 1
            self._seconds[key] += seconds

    def samples(self) -> list[tuple[tuple[str, str, int], int, float]]:
        with self._lock:
            return [(key, n, self._seconds[key]) for key, n in sorted(self._count.items())]


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


def scrape(http: HttpMetrics, services: Services) -> str:
    """The whole exposition: blocking (database, broker), so call it from a worker thread."""
    jobs = job_metrics(services.database)
    depths = queue_depths(services.tasks, QUEUES)
    return render(http, jobs, depths)


def render(http: HttpMetrics, jobs: JobMetrics, depths: Mapping[str, int] | None) -> str:
    lines = [
        *_gauge(
            "shears_jobs",
            "Jobs in the job store, by status.",
            ((f'status="{s}"', jobs.by_status.get(s, 0)) for s in JobStatus),
        ),
        *_gauge("shears_jobs_queued", "Jobs queued in the job store.", [("", _queued(jobs))]),
        *_gauge(
            "shears_jobs_failed",
            "Failed jobs in the job store, by error code (`other`: a code outside the set).",
            ((f'code="{c}"', n) for c, n in sorted(_codes(jobs).items())),
        ),
        *_histogram(
            "shears_job_stage_duration_seconds",
            "Seconds finished jobs spent per stage (final attempt; `queued` until first claimed).",
            "stage",
            jobs.stage_seconds,
        ),
        *_histogram(
            "shears_job_duration_seconds",
            "Seconds from a job's first claim to its end, by final status.",
            "status",
            jobs.run_seconds,
        ),
        *_queue_lines(depths),
        *_http_lines(http.samples()),
    ]
    return "\n".join(lines) + "\n"


def _queued(jobs: JobMetrics) -> int:
    return jobs.by_status.get("queued", 0)


def _codes(jobs: JobMetrics) -> dict[str, int]:
    """Every known code, zeros included, so a rate over a code that appears later works."""
    return {**dict.fromkeys(JOB_ERROR_CODES, 0), **jobs.failed_by_code}


def _gauge(name: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f"{name}{{{labels}}} {_number(v)}" if labels else f"{name} {_number(v)}"
              for labels, v in samples]  # fmt: skip
    return lines


def _histogram(
    name: str, help_text: str, label: str, histograms: Mapping[str, Histogram]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    bounds = [_number(b) for b in BUCKETS_S] + ["+Inf"]
    for value, histogram in sorted(histograms.items()):
        key = f'{label}="{_escape(value)}"'
        for bound, n in zip(bounds, histogram.cumulative(), strict=True):
            lines.append(f'{name}_bucket{{{key},le="{bound}"}} {n}')
        lines.append(f"{name}_sum{{{key}}} {histogram.total:.6f}")
        lines.append(f"{name}_count{{{key}}} {histogram.count}")
    return lines


def _queue_lines(depths: Mapping[str, int] | None) -> list[str]:
    up = _gauge(
        "shears_queue_depth_up",
        "1 when the broker answered the queue depth query of this scrape, else 0.",
        [("", 0 if depths is None else 1)],
    )
    if depths is None:
        return up
    return up + _gauge(
        "shears_queue_depth",
        "Messages waiting in the broker, by queue (not yet taken by a worker).",
        ((f'queue="{q}"', n) for q, n in sorted(depths.items())),
    )


def _http_lines(samples: Iterable[tuple[tuple[str, str, int], int, float]]) -> list[str]:
    counts = [
        "# HELP shears_http_requests_total HTTP requests, by method, route template and status.",
        "# TYPE shears_http_requests_total counter",
    ]
    seconds = [
        "# HELP shears_http_request_seconds_total Time spent answering, by the same labels.",
        "# TYPE shears_http_request_seconds_total counter",
    ]
    for (method, route, status), n, total in samples:
        labels = f'method="{method}",route="{_escape(route)}",status="{status}"'
        counts.append(f"shears_http_requests_total{{{labels}}} {n}")
        seconds.append(f"shears_http_request_seconds_total{{{labels}}} {total:.6f}")
    return counts + seconds


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
