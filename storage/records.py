"""Plain rows as the stores hand them out; the service turns them into API schemas."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ModelRecord:
    id: str
    tenant: str
    name: str
    sha256: str
    size_bytes: int
    format: str | None
    status: str
    info: dict[str, Any] | None
    error: str | None
    created_at: datetime
    error_code: str | None = None  # why it is `invalid` or `failed`: a stable code


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    tenant: str
    name: str
    sha256: str
    size_bytes: int
    samples: int
    arrays: list[dict[str, Any]]
    created_at: datetime


@dataclass(frozen=True)
class JobRecord:
    id: str
    tenant: str
    model_id: str
    status: str
    spec: dict[str, Any]
    stage: str
    fraction: float
    attempt: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    error_code: str | None
    error_message: str | None
    artifacts: list[dict[str, Any]]
    report: dict[str, Any] | None
    idempotency_key: str | None
    request_hash: str | None
    created_at: datetime
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    manifest_sha256: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class EventRecord:
    seq: int
    job_id: str
    attempt: int
    at: datetime
    stage: str
    fraction: float
    message: str
    data: dict[str, Any] | None
