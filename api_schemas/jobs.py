"""The job resource: one pruning run of one model."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.spec import PruneSpec


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
            "examples": [{"model_id": "mdl_3f9a1c2b7d4e", "spec": {"sparsity": 0.8}}]
        },
    )

    model_id: str = Field(min_length=1, max_length=64)
    spec: PruneSpec


class JobProgress(BaseModel):
    stage: str
    fraction: float = Field(ge=0.0, le=1.0)


class JobError(BaseModel):
    code: str = Field(
        description="Stable error code, e.g. `invalid_model`, `timeout`, "
        "`worker_lost`, `resource_exhausted`."
    )
    message: str


class Artifact(BaseModel):
    name: str
    format: str
    size_bytes: int
    sha256: str


class Job(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "job_8c1d2e3f4a5b",
                    "model_id": "mdl_3f9a1c2b7d4e",
                    "status": "running",
                    "progress": {"stage": "prune", "fraction": 0.4},
                    "attempt": 1,
                    "error": None,
                    "created_at": "2026-11-25T08:00:00Z",
                    "started_at": "2026-11-25T08:00:01Z",
                    "finished_at": None,
                    "spec": {"method": {"name": "magnitude"}, "sparsity": 0.8},
                    "artifacts": [],
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


class JobEvent(BaseModel):
    seq: int
    at: datetime
    stage: str
    fraction: float
    message: str
    data: dict[str, Any] | None = None
