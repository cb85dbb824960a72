"""Settings and broker wiring shared by the API and the worker (no torch, no engine)."""

from shears_config.broker import (
    INSPECT_QUEUE,
    JOB_QUEUE,
    TASK_INSPECT_MODEL,
    TASK_RUN_JOB,
    broker_settings,
)
from shears_config.settings import Settings, get_settings

__all__ = [
    "INSPECT_QUEUE",
    "JOB_QUEUE",
    "TASK_INSPECT_MODEL",
    "TASK_RUN_JOB",
    "Settings",
    "broker_settings",
    "get_settings",
]
