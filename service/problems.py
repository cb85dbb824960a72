"""Every error leaves the API here, as RFC 9457 `application/problem+json`.

    HTTPException (starlette)        404 for unknown routes, 405, and the errors below
     └── ProblemError                an answer the service chose: status, code, detail, errors
          ├── Invalid (422)          the request names something that cannot work
          ├── PayloadTooLarge (413)
          ├── InsufficientStorage (507)
          └── BrokerUnavailable (503, Retry-After)
    RequestValidationError           422, one `errors` entry per offending field
    storage.NotFound / Conflict      404 / 409
    anything else                    500, logged with its traceback, none in the body

`ProblemError` derives from HTTPException because FastAPI re-raises HTTPException from its
body reader unchanged and turns every other exception there into a bare 400.
"""

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from api_schemas import Problem, ProblemFieldError
from shears_config.logging import current_request_id
from storage import Conflict, NotFound
from storage.blob_store import BlobTooLarge

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://shears.dev/problems/"
BROKER_RETRY_AFTER_S = 5

log = logging.getLogger("shears.api")


class ProblemError(HTTPException):
    """An error answer; `code` is stable for clients, `detail` says what to fix."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: Sequence[ProblemFieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.code = code
        self.errors = list(errors)
        self.extra = dict(extra or {})  # RFC 9457 extension members, e.g. the model kept


class Invalid(ProblemError):
    """422 naming the offending field(s)."""

    def __init__(self, field: str, message: str, code: str = "validation_failed") -> None:
        errors = [ProblemFieldError(field=field, message=message)]
        super().__init__(422, code, f"{field}: {message}", errors=errors)


class PayloadTooLarge(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(413, "payload_too_large", detail, headers={"Connection": "close"})


class InsufficientStorage(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            507,
            "insufficient_storage",
            f"{detail}; nothing was kept: free space on the service's data disk, or ask its "
            "operator to",
            headers={"Connection": "close"},
        )


class BrokerUnavailable(ProblemError):
    """`reason` (hosts, ports, driver errors) is for logs and /readyz, not for clients."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            503,
            "broker_unavailable",
            f"the job queue is unreachable; nothing was queued, retry in {BROKER_RETRY_AFTER_S} s",
            headers={"Retry-After": str(BROKER_RETRY_AFTER_S)},
        )


def problem_response(
    status: int,
    detail: str,
    code: str,
    *,
    errors: Sequence[ProblemFieldError] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    problem = Problem(
        type=PROBLEM_TYPE_BASE + code.replace("_", "-"),
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        code=code,
        errors=list(errors) or None,
        request_id=current_request_id(),
    )
    body = {**problem.model_dump(exclude_none=True), **(extra or {})}
    return JSONResponse(body, status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


def field_path(loc: Sequence[int | str]) -> str:
    """`("body", "spec", "layers", "include", 0)` -> `spec.layers.include[0]`."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(e) for e in exc.errors()]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return problem_response(422, detail, "validation_failed", errors=errors)


def _field_error(error: Mapping[str, Any]) -> ProblemFieldError:
    if error["type"] == "json_invalid":  # its loc is a character offset, not a field
        reason = error.get("ctx", {}).get("error", "")
        return ProblemFieldError(field="body", message=f"not valid JSON: {reason}".strip(": "))
    return ProblemFieldError(field=field_path(error["loc"]), message=error["msg"])


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ProblemError):
        return problem_response(
            exc.status_code,
            exc.detail,
            exc.code,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )
    detail, headers = exc.detail, dict(exc.headers or {})
    if exc.status_code == 404:  # no route matched
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    code = HTTPStatus(exc.status_code).name.lower()
    return problem_response(exc.status_code, detail, code, headers=headers)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(404, str(exc), "not_found")


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(409, str(exc), "conflict")


async def _too_large(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(413, str(exc), "payload_too_large", headers={"Connection": "close"})


async def _disconnected(_: Request, __: Exception) -> JSONResponse:
    # Nobody is left to read this; answering keeps a dropped upload out of the error log.
    return problem_response(400, "the client disconnected mid-request", "client_disconnected")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "an unexpected error occurred; it has been logged", "internal")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(BlobTooLarge, _too_large)
    app.add_exception_handler(ClientDisconnect, _disconnected)
    app.add_exception_handler(Exception, _unexpected)


_DESCRIPTIONS = {
    400: "The request could not be read.",
    401: "Missing or unknown API key.",
    404: "No such resource for this API key.",
    409: "The resource is in a state that forbids this.",
    413: "The upload is larger than the configured limit.",
    415: "The body is not multipart/form-data.",
    422: "The request is invalid; `errors` names each offending field.",
    503: "A dependency (the job queue) is unreachable; retry after `Retry-After` seconds.",
    507: "The service's disk cannot hold the upload; nothing was kept.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the problems an operation may answer."""
    return {s: {"model": Problem, "description": _DESCRIPTIONS[s]} for s in statuses}
