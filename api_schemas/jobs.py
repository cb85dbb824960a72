"""The job resource: one pruning run of one model."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api_schemas.common import example
from api_schemas.manifest import Sha256
from api_schemas.spec import PruneSpec
from api_schemas.webhooks import CallbackSecret, CallbackStatus, CallbackUrl


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model_id": "mdl_3f9a1c2b7d4e0a51",
                    "spec": {"method": {"name": "magnitude"}, "sparsity": 0.8},
                }
            ]
        },
    )

    model_id: str = Field(min_length=1, max_length=64)
    spec: PruneSpec
    callback_url: CallbackUrl | None = None
    # validate_default: the check must run when the secret is missing.
    callback_secret: CallbackSecret | None = Field(default=None, validate_default=True)
    reuse: Literal["never", "identical"] = Field(
        default="never",
        description="`identical`: when a succeeded job of yours has the same manifest (model, "
        "datasets, spec and versions), answer it (200) instead of queueing a new one. "
        "`never`: always a new job. A reused answer is already final, so its "
        "`callback_url` is not called.",
    )

    @field_validator("callback_secret", mode="after")
    @classmethod
    def _secret_with_url(
        cls, secret: CallbackSecret | None, info: ValidationInfo
    ) -> CallbackSecret | None:
        has_url = info.data.get("callback_url") is not None
        if has_url and secret is None:
            raise ValueError("required with callback_url: the key that signs each delivery")
        if secret is not None and not has_url and "callback_url" in info.data:
            raise ValueError("given without callback_url")
        return secret


class JobProgress(BaseModel):
    model_config = example({"stage": "latency", "fraction": 0.62})

    stage: str
    fraction: float = Field(ge=0.0, le=1.0)


class JobError(BaseModel):
    model_config = example(
        {"code": "timeout", "message": "the job ran past its 3600 s limit and was stopped"}
    )

    code: str = Field(
        description="Stable error code, e.g. `invalid_model`, `timeout`, "
        "`worker_lost`, `resource_exhausted`."
    )
    message: str


class Artifact(BaseModel):
    model_config = example(
        {
            "name": "model",
            "format": "onnx",
            "size_bytes": 814306,
            "sha256": "e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8",
        }
    )

    name: str
    format: str
    size_bytes: int
    sha256: str


class Job(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "job_8c1d2e3f4a5b6c7d",
                    "model_id": "mdl_3f9a1c2b7d4e0a51",
                    "status": "succeeded",
                    "progress": {"stage": "report", "fraction": 1.0},
                    "attempt": 1,
                    "error": None,
                    "created_at": "2026-11-25T08:02:00Z",
                    "started_at": "2026-11-25T08:02:01Z",
                    "finished_at": "2026-11-25T08:02:19Z",
                    "spec": {"method": {"name": "magnitude"}, "sparsity": 0.8},
                    "artifacts": [
                        {
                            "name": "model",
                            "format": "onnx",
                            "size_bytes": 814306,
                            "sha256": "e3b98a4da31a127d4bde6e43033f66ba"
                            "274cab0eb7eb1c70ec41402bf6273dd8",
                        }
                    ],
                    "manifest_sha256": "5b1e04c7a9d2f3e6" * 4,
                }
            ]
        }
    )

    id: str
    model_id: str
    status: JobStatus
    progress: JobProgress
    attempt: int
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    spec: PruneSpec
    artifacts: list[Artifact]
    callback_url: str | None = Field(
        default=None, description="Where the webhook goes when the job ends; null: none."
    )
    callback: CallbackStatus | None = Field(
        default=None, description="The webhook's delivery; null when the job has no callback."
    )
    manifest_sha256: Sha256 | None = Field(
        default=None,
        description="The sha256 of what decides the artifact's bytes (the report's "
        "`manifest`): jobs with the same value write the same model artifact. Computed at "
        "creation; once the job ran, the value of what actually ran.",
    )


class JobEvent(BaseModel):
    model_config = example(
        {
            "seq": 3,
            "at": "2026-11-25T08:02:03Z",
            "stage": "prune",
            "fraction": 0.1,
            "message": "prune",
            "data": {"layers": 2},
        }
    )

    seq: int
    at: datetime
    stage: str
    fraction: float
    message: str
    data: dict[str, Any] | None = None
