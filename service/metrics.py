"""Prometheus text exposition, written by hand: two metric families do not need a library.

Labels are bounded on purpose: HTTP requests by route *template* and status, jobs by status;
never an id, so the number of series stays fixed however many jobs run.
"""

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_schemas import JobStatus

_UNMATCHED = "unmatched"
# Clients choose the method string; anything unusual is one series, not one per spelling.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
            self.metrics.observe(_method(scope), _route_template(scope), status, elapsed)


def _method(scope: Scope) -> str:
    method = str(scope["method"])
    return method if method in _METHODS else "other"


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return str(template) if template else _UNMATCHED


def render(http: HttpMetrics, jobs_by_status: Mapping[str, int]) -> str:
    lines = [
        "# HELP shears_jobs Jobs in the job store, by status.",
        "# TYPE shears_jobs gauge",
        *(f'shears_jobs{{status="{s}"}} {jobs_by_status.get(s, 0)}' for s in JobStatus),
        *_http_lines(http.samples()),
    ]
    return "\n".join(lines) + "\n"


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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
