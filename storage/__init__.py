"""Persistence shared by the API and the worker: the SQL job store and the blob store."""

from storage.blobs import BlobStore
from storage.database import Database, connect
from storage.errors import Conflict, NotFound, StoreError
from storage.jobs import Claim, ClaimRefused, JobStore
from storage.records import (
    DatasetRecord,
    EventRecord,
    JobRecord,
    ModelRecord,
)
from storage.webhooks import CallbackRecord, CallbackTarget, DeliveryRecord, WebhookStore

__all__ = [
    "BlobStore",
    "CallbackRecord",
    "CallbackTarget",
    "Claim",
    "ClaimRefused",
    "Conflict",
    "Database",
    "DatasetRecord",
    "DeliveryRecord",
    "EventRecord",
    "JobRecord",
    "JobStore",
    "ModelRecord",
    "NotFound",
    "StoreError",
    "WebhookStore",
    "connect",
]
