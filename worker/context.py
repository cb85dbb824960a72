"""What a task needs to run: settings, the job store, the blob store, and its lease name."""

import os
import secrets
import socket
from dataclasses import dataclass
from functools import lru_cache

from shears_config import Settings, get_settings
from storage import BlobStore, JobStore, connect, open_blob_store


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    store: JobStore
    blobs: BlobStore

    @classmethod
    def from_settings(cls, settings: Settings) -> "WorkerContext":
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # SQLite's file lives there
        store = JobStore(connect(settings.resolved_database_url))
        blobs = open_blob_store(settings.blob_url, settings.blob_dir, settings.s3_endpoint_url)
        return cls(settings=settings, store=store, blobs=blobs)


@lru_cache(maxsize=1)
def get_context() -> WorkerContext:
    """One per pool process, built on first use: after the fork, so no database connection
    is ever shared between processes."""
    return WorkerContext.from_settings(get_settings())


def new_lease_owner() -> str:
    """Names one delivery: host, pool process, and a random part (a redelivery to the same
    process is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
