"""Persistence shared by the API and the worker: the SQL job store and the blob store."""

from storage.blob_store import BlobMissing, BlobStore, BlobTooLarge, StoredBlob, open_blob_store
from storage.blobs import FileBlobStore
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
    "BlobMissing",
    "BlobStore",
    "BlobTooLarge",
    "CallbackRecord",
    "CallbackTarget",
    "Claim",
    "ClaimRefused",
    "Conflict",
    "Database",
    "DatasetRecord",
    "DeliveryRecord",
    "EventRecord",
    "FileBlobStore",
    "JobRecord",
    "JobStore",
    "ModelRecord",
    "NotFound",
    "StoreError",
    "StoredBlob",
    "WebhookStore",
    "connect",
    "open_blob_store",
]
