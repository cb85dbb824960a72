"""uploadModel: store the bytes (a multipart upload, or the S3 object a JSON body names: see
`model_sources`), let a worker open them, wait a little for its verdict.

The API never opens a model (TorchScript is code, and ONNX parsing belongs to the engine):
a worker inspects it from the inspect queue and marks the row `ready`, `invalid` or `failed`.
A model that is refused leaves nothing behind: its row is deleted and its blob released. A
`failed` one (Shears' fault, not the file's) is kept for `retry_inspection`.
"""

import asyncio
import time

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request

from api_schemas import ModelFormat
from service.blobs import release_blob
from service.model_sources import fetch_source, is_json, read_source_body
from service.problems import BrokerUnavailable, Invalid, ProblemError
from service.runtime import Services
from service.uploads import Upload, display_name, receive_upload
from shears_config.logging import current_request_id
from storage import ModelRecord

FIELDS = frozenset({"name", "format"})
_FIRST_POLL_S = 0.05
_MAX_POLL_S = 0.5


async def upload_model(request: Request, services: Services, tenant: str) -> ModelRecord:
    """The model row: `ready`, or still `validating` after `inspect_wait_s`."""
    upload = await _receive(request, services)
    try:
        declared = _declared_format(upload)
        _refuse_empty(upload)
    except Invalid:
        await run_in_threadpool(release_blob, services.store, services.blobs, upload.blob.sha256)
        raise
    name = display_name(upload.fields.get("name") or upload.filename, default="model")
    record = await run_in_threadpool(
        services.store.create_model, tenant, name, upload.blob.sha256, upload.blob.size_bytes
    )
    try:
        hint = declared.value if declared else None
        await run_in_threadpool(services.tasks.inspect_model, record.id, hint, current_request_id())
    except BrokerUnavailable:
        await _discard(services, record)
        raise
    record = await _wait_for_inspection(services, record, services.settings.inspect_wait_s)
    await _refuse_if_invalid(services, record, declared)
    return record


async def _receive(request: Request, services: Services) -> Upload:
    """The multipart upload, or the object a JSON body names (`model_sources`)."""
    settings = services.settings
    if not is_json(request):
        return await receive_upload(
            request, services.store, services.blobs, settings.max_upload_bytes, FIELDS
        )
    body = await read_source_body(request)
    fetched = await run_in_threadpool(
        fetch_source,
        body["source"],
        services.blobs,
        settings.max_upload_bytes,
        settings.s3_endpoint_url,
    )
    fields = {k: v for k, v in body.items() if k in FIELDS}
    return Upload(blob=fetched.blob, filename=fetched.filename, fields=fields)


def _declared_format(upload: Upload) -> ModelFormat | None:
    value = upload.fields.get("format")
    if not value:
        return None
    try:
        return ModelFormat(value)
    except ValueError as exc:
        allowed = ", ".join(f.value for f in ModelFormat)
        raise Invalid("format", f"{value!r} is not one of {allowed}") from exc


def _refuse_empty(upload: Upload) -> None:
    if upload.blob.size_bytes == 0:
        raise Invalid("file", "the file is empty", "invalid_model")


async def _wait_for_inspection(
    services: Services, record: ModelRecord, wait_s: float
) -> ModelRecord:
    deadline = time.monotonic() + wait_s
    pause = _FIRST_POLL_S
    while record.status == "validating" and time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, _MAX_POLL_S)
        record = await run_in_threadpool(services.store.get_model, record.tenant, record.id)
    return record


async def retry_inspection(services: Services, tenant: str, model_id: str) -> ModelRecord:
    """Inspect a `failed` model again (a model in any other state is returned as it is)."""
    record = await run_in_threadpool(services.store.retry_model_inspection, tenant, model_id)
    if record.status != "validating":
        return record
    hint = record.format
    await run_in_threadpool(services.tasks.inspect_model, record.id, hint, current_request_id())
    record = await _wait_for_inspection(services, record, services.settings.inspect_wait_s)
    await _refuse_if_invalid(services, record, None)
    return record


async def _refuse_if_invalid(
    services: Services, record: ModelRecord, declared: ModelFormat | None
) -> None:
    if record.status == "invalid":
        await _discard(services, record)
        message = record.error or "the model could not be opened"
        raise Invalid("file", message, record.error_code or "invalid_model")
    if record.status == "failed":  # ours, not the file's: kept for a retry
        raise ProblemError(
            500,
            record.error_code or "internal_error",
            record.error or "Shears failed while opening the model",
            extra={"model_id": record.id},
        )
    if record.status == "ready" and declared is not None and record.format != declared.value:
        await _discard(services, record)
        raise Invalid(
            "format",
            f"declared {declared.value}, but the file is {record.format}",
            "format_mismatch",
        )


async def _discard(services: Services, record: ModelRecord) -> None:
    await run_in_threadpool(services.store.delete_model, record.tenant, record.id)
    await run_in_threadpool(release_blob, services.store, services.blobs, record.sha256)
