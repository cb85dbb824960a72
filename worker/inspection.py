"""Validate an upload: open it in a sandboxed child and record what it is, or why not.

The API waits on the model row's status, never on a Celery result: `validating` -> `ready`,
`invalid` (the file's fault, with the engine's code: invalid_model, unsupported_operator, ...)
or `failed` (ours: an exception in Shears, a crashed child; the file is kept for a retry and
the log has the details under the request's id). TorchScript is only ever opened in the child.
"""

import logging
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from api_schemas import ModelFormat, PrunableTensor, TensorInfo
from storage import NotFound
from worker import protocol
from worker.context import WorkerContext
from worker.protocol import ChildError
from worker.sandbox import Limits
from worker.supervisor import Stopped, run_child
from worker.workdir import place_blob, private_workdir

log = logging.getLogger(__name__)

# Codes that blame the file; anything else (internal_error, a crash, an unknown code) is ours.
FILE_FAULTS = frozenset(
    {
        protocol.INVALID_MODEL,
        "unsupported_model",
        "unsupported_operator",
        protocol.TIMEOUT,
        protocol.RESOURCE_EXHAUSTED,
    }
)
FAILED_MESSAGE = (
    "Shears failed while opening the model: an error in the service, not in the file. The "
    "file is kept; retry with POST /v1/models/{id}/inspect, and quote the request id of the "
    "upload (X-Request-ID) if it fails again: the service's log has the details under it."
)
_TENSORS = TypeAdapter(list[TensorInfo])
_PRUNABLE = TypeAdapter(list[PrunableTensor])


def inspect_model(ctx: WorkerContext, model_id: str, format_hint: str | None = None) -> str:
    """Returns the model's status afterwards (`ready`, `invalid`, `failed` or `missing`)."""
    try:
        model = ctx.store.get_model(None, model_id)
    except NotFound:
        log.info("model %s: deleted before it was inspected", model_id)
        return "missing"
    if model.status != "validating":  # a redelivery: the first delivery decided
        return model.status
    fmt = _known_format(format_hint or model.format)
    with private_workdir(ctx.settings.data_dir, f"inspect-{model_id}") as workdir:
        model_file = (
            Path(protocol.INPUT_DIR) / f"model{protocol.MODEL_SUFFIXES.get(fmt or '', '.bin')}"
        )
        place_blob(ctx.blobs, model.sha256, workdir / model_file)
        request = {
            "kind": "inspect",
            "model": str(model_file),
            "format": fmt,
            "measure_memory_bytes": ctx.settings.measure_memory_bytes,
        }
        limits = Limits(ctx.settings.child_memory_bytes, ctx.settings.inspect_time_limit_s)
        ending = run_child(workdir, request, limits)
    return _record(ctx, model_id, ending)


def _record(
    ctx: WorkerContext, model_id: str, ending: dict[str, Any] | ChildError | Stopped
) -> str:
    if isinstance(ending, dict):
        try:
            info = _checked_info(ending.get("info"))
        except ValueError as exc:
            ending = ChildError(protocol.INTERNAL_ERROR, str(exc))
        else:
            ctx.store.set_model_validated(model_id, info["format"], info)
            log.info("model %s: ready (%s)", model_id, info["format"])
            return "ready"
    if isinstance(ending, ChildError) and ending.code in FILE_FAULTS:
        message = _invalid_message(ending)
        ctx.store.set_model_invalid(model_id, message, ending.code)
        log.info("model %s: invalid (%s): %s", model_id, ending.code, message)
        return "invalid"
    detail = ending.reason if isinstance(ending, Stopped) else ending.message
    log.error("model %s: inspection failed in Shears, not in the file: %s", model_id, detail)
    mark_failed(ctx, model_id)
    return "failed"


def mark_failed(ctx: WorkerContext, model_id: str) -> None:
    """Our fault, not the file's: kept `failed` for POST /v1/models/{id}/inspect."""
    ctx.store.set_model_failed(model_id, FAILED_MESSAGE.format(id=model_id))


def _checked_info(info: Any) -> dict[str, Any]:
    """The engine's description must fit what the API shows as a Model."""
    if not isinstance(info, dict) or _known_format(info.get("format")) is None:
        raise ValueError("the engine did not say which format the model is")
    for key, adapter in (("inputs", _TENSORS), ("outputs", _TENSORS), ("prunable", _PRUNABLE)):
        try:
            adapter.validate_python(info.get(key, []))
        except ValidationError as exc:
            detail = protocol.describe_validation_error(key, exc.errors())
            raise ValueError(
                f"the engine's model description breaks the contract: {detail}"
            ) from exc
    return info


def _known_format(fmt: Any) -> str | None:
    return fmt if fmt in {f.value for f in ModelFormat} else None


def _invalid_message(ending: ChildError) -> str:
    if ending.code == protocol.TIMEOUT:
        return f"opening the model took too long: {ending.message}"
    if ending.code == protocol.RESOURCE_EXHAUSTED:
        return (
            f"opening the model needs more memory than a job may use ({ending.message}); "
            "a worker with a larger SHEARS_CHILD_MEMORY_BYTES can open it"
        )
    return ending.message
