"""What the running API holds: opened once in the lifespan, handed to routes as dependencies."""

from dataclasses import dataclass

from service.secret_box import SecretBox
from service.tasks import TaskSender
from shears_config import Settings
from storage import BlobStore, Database, JobStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    database: Database
    store: JobStore
    blobs: BlobStore
    tasks: TaskSender
    secrets: SecretBox  # seals webhook signing secrets in the job store
