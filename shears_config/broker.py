"""Broker wiring both sides agree on: queue and task names, connection settings.

The API sends tasks by name and never imports the worker.
"""

from pathlib import Path
from typing import Any

from shears_config.settings import Settings

TASK_RUN_JOB = "shears.run_job"
TASK_INSPECT_MODEL = "shears.inspect_model"
JOB_QUEUE = "shears.jobs"
# Validation of uploads has its own queue so a long pruning job never delays an upload.
INSPECT_QUEUE = "shears.inspect"


def broker_settings(settings: Settings) -> dict[str, Any]:
    """Celery configuration keys for the connection, shared by sender and worker."""
    if settings.uses_embedded_broker:
        folder = _embedded_folder(settings)
        return {
            "broker_url": "filesystem://",
            "broker_transport_options": {
                "data_folder_in": str(folder),
                "data_folder_out": str(folder),
                "processed_folder": str(folder.parent / "processed"),
                "store_processed": False,
                # Exchange binding tables; kombu's default is `control/` in the cwd of
                # every process that declares a queue (sender and worker alike).
                "control_folder": str(folder.parent / "control"),
            },
        }
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
        },
        "broker_connection_retry_on_startup": True,
    }


def _embedded_folder(settings: Settings) -> Path:
    folder = (settings.data_dir / "broker" / "queue").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / "processed").mkdir(parents=True, exist_ok=True)
    return folder
