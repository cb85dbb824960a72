"""Datasets: upload (stream an `.npz`, check it, record its arrays) and delete."""

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request

from service.blobs import release_blob
from service.npz import NpzRefused, NpzSummary, inspect_npz
from service.problems import Invalid
from service.runtime import Services
from service.spec_checks import dataset_refs
from service.uploads import display_name, receive_upload
from storage import Conflict, DatasetRecord, JobStore

FIELDS = frozenset({"name"})
_ACTIVE = ("queued", "running")
_PAGE = 200


async def upload_dataset(request: Request, services: Services, tenant: str) -> DatasetRecord:
    upload = await receive_upload(
        request, services.store, services.blobs, services.settings.max_upload_bytes, FIELDS
    )
    sha256 = upload.blob.sha256
    try:
        summary = await run_in_threadpool(_inspect, services, sha256)
    except Invalid:
        await run_in_threadpool(release_blob, services.store, services.blobs, sha256)
        raise
    name = display_name(upload.fields.get("name") or upload.filename, default="dataset")
    return await run_in_threadpool(
        services.store.create_dataset,
        tenant,
        name,
        sha256,
        upload.blob.size_bytes,
        summary.samples,
        summary.arrays,
    )


def _inspect(services: Services, sha256: str) -> NpzSummary:
    # A dataset larger than a job's memory limit could never be loaded by a job.
    limit = services.settings.child_memory_bytes
    try:
        # In a bucket the archive is fetched to a temp file first: zip's directory is at its
        # end, and numpy seeks, which a streamed body cannot.
        with services.blobs.as_local_file(sha256) as path:
            return inspect_npz(path, max_unpacked_bytes=limit)
    except NpzRefused as exc:
        raise Invalid("file", str(exc), "invalid_dataset") from exc


def delete_dataset(services: Services, tenant: str, dataset_id: str) -> None:
    """Refuse (409) while a queued or running job of this tenant names the dataset."""
    store = services.store
    store.get_dataset(tenant, dataset_id)
    users = _active_jobs_using(store, tenant, dataset_id)
    if users:
        raise Conflict(f"dataset {dataset_id!r} is used by active job(s): {', '.join(users[:5])}")
    record = store.delete_dataset(tenant, dataset_id)
    release_blob(store, services.blobs, record.sha256)


def _active_jobs_using(store: JobStore, tenant: str, dataset_id: str) -> list[str]:
    users: list[str] = []
    for status in _ACTIVE:
        cursor = None
        while True:
            jobs, cursor = store.list_jobs(tenant, _PAGE, cursor, status)
            users += [j.id for j in jobs if dataset_id in dict(dataset_refs(j.spec)).values()]
            if cursor is None:
                break
    return users
