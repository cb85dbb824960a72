"""Store rows -> the API contract. The only place that knows both shapes.

A model row's `info` is written by the worker's inspection: `parameters`, `inputs`,
`outputs` (name, dtype, shape), `prunable` (name, shape, op, node) and `unused` (tensor,
node, reason), as in `api_schemas.Model`.
"""

from typing import Any

from api_schemas import (
    ArrayInfo,
    Artifact,
    CallbackStatus,
    Dataset,
    Job,
    JobError,
    JobEvent,
    JobProgress,
    Model,
)
from storage import CallbackRecord, DatasetRecord, EventRecord, JobRecord, ModelRecord


def model_view(record: ModelRecord) -> Model:
    info: dict[str, Any] = record.info or {}
    return Model.model_validate(
        {
            "id": record.id,
            "name": record.name,
            "format": record.format,
            "status": record.status,
            "size_bytes": record.size_bytes,
            "sha256": record.sha256,
            "parameters": info.get("parameters"),
            "inputs": info.get("inputs", []),
            "outputs": info.get("outputs", []),
            "prunable": info.get("prunable", []),
            "unused": info.get("unused", []),
            "error": record.error,
            "error_code": record.error_code,
            "created_at": record.created_at,
        }
    )


def dataset_view(record: DatasetRecord) -> Dataset:
    return Dataset(
        id=record.id,
        name=record.name,
        size_bytes=record.size_bytes,
        sha256=record.sha256,
        samples=record.samples,
        arrays=[ArrayInfo.model_validate(a) for a in record.arrays],
        created_at=record.created_at,
    )


def job_view(record: JobRecord, callback: CallbackRecord | None = None) -> Job:
    error = None
    if record.error_code is not None:
        error = JobError(code=record.error_code, message=record.error_message or "")
    return Job.model_validate(
        {
            "id": record.id,
            "model_id": record.model_id,
            "status": record.status,
            "progress": JobProgress(stage=record.stage, fraction=record.fraction),
            "attempt": record.attempt,
            "error": error,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "spec": record.spec,
            "artifacts": [Artifact.model_validate(a) for a in record.artifacts],
            "callback_url": callback.url if callback else None,
            "callback": callback_view(callback) if callback else None,
            "manifest_sha256": record.manifest_sha256,
        }
    )


def callback_view(record: CallbackRecord) -> CallbackStatus:
    return CallbackStatus.model_validate(
        {
            "state": record.state,
            "attempts": record.attempts,
            "last_error": record.last_error,
            "next_attempt_at": record.next_attempt_at,
            "delivered_at": record.delivered_at,
        }
    )


def event_view(record: EventRecord) -> JobEvent:
    return JobEvent(
        seq=record.seq,
        at=record.at,
        stage=record.stage,
        fraction=record.fraction,
        message=record.message,
        data=record.data,
    )
