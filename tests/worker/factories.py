"""Rows as the API writes them, for tests that call the worker's functions directly."""

from pathlib import Path
from typing import Any

from storage import JobRecord, ModelRecord
from worker.context import WorkerContext

TENANT = "tenant-a"


def add_model(ctx: WorkerContext, path: Path) -> ModelRecord:
    """An upload as the API records it: blob stored, row `validating`."""
    blob = ctx.blobs.put_file(path)
    return ctx.store.create_model(TENANT, path.name, blob.sha256, blob.size_bytes)


def add_ready_model(ctx: WorkerContext, path: Path) -> ModelRecord:
    """An upload the engine has described (in this process: the test trusts its own file)."""
    from pruning import inspect_model

    record = add_model(ctx, path)
    info = inspect_model(path)
    ctx.store.set_model_validated(record.id, info["format"], info)
    return ctx.store.get_model(None, record.id)


def add_job(ctx: WorkerContext, model: ModelRecord, spec: dict[str, Any]) -> JobRecord:
    job, _ = ctx.store.create_job(TENANT, model.id, spec)
    return job
