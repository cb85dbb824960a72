"""Request ids and the access log: pure ASGI, so streamed uploads and downloads pass untouched.

Each request gets an id: the client's `X-Request-ID` when it is a sane token, else a new one.
It is in every log line written while the request is handled (shears_config/logging.py),
in the response's `X-Request-ID` header, and stored with a job that the request creates, so
the worker's lines about that job carry it too (service/job_submission.py).
"""

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import route_template
from shears_config.logging import bind_context, reset_context

HEADER = "X-Request-ID"
# Long enough for a UUID or a trace id, and nothing that could forge a log line or a header.
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Probes and scrapes arrive every few seconds; their lines are noise unless asked for.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

access_log = logging.getLogger("shears.access")


def request_id_from(scope: Scope) -> str:
    """The client's id if it is a sane token (<= 128 of [A-Za-z0-9._-]), else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _SANE.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestContext:
    """Sets the request id for the request's log lines, returns it as `X-Request-ID`, and
    writes one access line: method, route template (never the path or query string, which
    may hold ids or tokens), status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        token = bind_context(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _log_access(scope, status, time.perf_counter() - started)
        # Only on the way out without an exception: Starlette's outermost error middleware
        # logs an unhandled error after we return, and that line should name the request
        # too. Each request runs in its own task, so the id goes with the task.
        reset_context(token)


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    route = route_template(scope)
    method = str(scope.get("method", ""))
    level = logging.DEBUG if route in _QUIET_ROUTES and status < 400 else logging.INFO
    duration_ms = round(seconds * 1000, 2)
    access_log.log(
        level,
        "%s %s %d %.1f ms",
        method,
        route,
        status,
        duration_ms,
        extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms},
    )
