"""/v1/jobs: create, list, get, cancel, events, report, artifacts."""

import functools
from typing import Annotated

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Header, Query, Response

from api_schemas import Job, JobCreate, JobEvent, JobStatus, Page, Report
from service.artifacts import artifact_download, job_report, report_page
from service.deps import BlobsDep, PageDep, ServicesDep, StoreDep, TenantDep
from service.job_submission import submit_job
from service.openapi import BINARY_SCHEMA
from service.problems import problems
from service.representations import event_view, job_view
from service.runtime import Services
from storage import JobRecord, JobStore

COLLECTION = "/v1/jobs"
# Enough for a commit's fsync (storage/group_commit.py) and a Redis round trip to overlap
# the next requests' checks; each thread spends most of its time holding the GIL.
SUBMIT_THREADS = 8
router = APIRouter(prefix=COLLECTION, tags=["jobs"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=256,
        description="Same key and body: the same job again (200), never a second one.",
    ),
]

ManifestFilter = Annotated[
    str | None,
    Query(
        pattern="^[0-9a-f]{64}$",
        description="Only jobs with this `manifest_sha256`: earlier runs of the same job.",
    ),
]


@router.post(
    "",
    operation_id="createJob",
    status_code=202,
    summary="Check a PruneSpec against the model and queue the job",
    responses={
        200: {
            "model": Job,
            "description": "Nothing queued: the job an earlier request with this "
            "Idempotency-Key made, or, with `reuse: identical`, the newest succeeded job "
            "with the same manifest (its artifacts are the bytes a new job would write).",
        },
        **problems(404, 409, 413, 422, 503),
    },
)
async def create_job(
    body: JobCreate,
    response: Response,
    services: ServicesDep,
    tenant: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    job, created = await to_thread.run_sync(
        _create, services, tenant, body, idempotency_key, limiter=_submitting()
    )
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"{COLLECTION}/{job.id}"
    return job


def _create(
    services: Services, tenant: str, body: JobCreate, idempotency_key: str | None
) -> tuple[Job, bool]:
    submission = submit_job(services, tenant, body, idempotency_key)
    if submission.created:  # its callback is the one just written: no query for it
        return job_view(submission.job, submission.callback), True
    return _view(services.store, submission.job), False


@functools.cache
def _submitting() -> CapacityLimiter:
    """createJob's own threads, separate from the pool FastAPI runs other routes in: few, so
    requests are served about in arrival order instead of 40 threads racing for the GIL
    (the tail of createJob under load), and never held up by long uploads in the shared
    pool. Made on first use: a limiter belongs to the running event loop's library."""
    return CapacityLimiter(SUBMIT_THREADS)


@router.get("", operation_id="listJobs", summary="List jobs, newest first")
def list_jobs(
    store: StoreDep,
    tenant: TenantDep,
    page: PageDep,
    status: JobStatus | None = None,
    manifest_sha256: ManifestFilter = None,
) -> Page[Job]:
    records, next_cursor = store.list_jobs(tenant, page.limit, page.cursor, status, manifest_sha256)
    return Page[Job](items=_views(store, records), next_cursor=next_cursor)


@router.get("/{job_id}", operation_id="getJob", summary="Get a job", responses=problems(404))
def get_job(job_id: str, store: StoreDep, tenant: TenantDep) -> Job:
    return _view(store, store.get_job(tenant, job_id))


@router.post(
    "/{job_id}/cancel",
    operation_id="cancelJob",
    summary="Cancel a job: a queued one at once, a running one by its worker",
    responses={
        202: {"model": Job, "description": "Running: its worker stops it shortly."},
        **problems(404, 409),
    },
)
def cancel_job(job_id: str, response: Response, store: StoreDep, tenant: TenantDep) -> Job:
    record = store.request_cancel(tenant, job_id)
    if record.status == "running":
        response.status_code = 202
    return _view(store, record)


@router.get(
    "/{job_id}/events",
    operation_id="listJobEvents",
    summary="What the job did, in order; pass `next_cursor` back as `after`",
    responses=problems(404),
)
def list_job_events(
    job_id: str,
    store: StoreDep,
    tenant: TenantDep,
    after: Annotated[int, Query(ge=0, description="Only events with a larger `seq`.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> Page[JobEvent]:
    store.get_job(tenant, job_id)  # 404 for unknown ids and other tenants' jobs
    events = [event_view(e) for e in store.list_events(job_id, after=after, limit=limit)]
    next_cursor = str(events[-1].seq) if len(events) == limit else None
    return Page[JobEvent](items=events, next_cursor=next_cursor)


@router.get(
    "/{job_id}/report",
    operation_id="getJobReport",
    summary="The report of a succeeded job",
    responses=problems(404, 409),
)
def get_job_report(job_id: str, store: StoreDep, tenant: TenantDep) -> Report:
    return job_report(store.get_job(tenant, job_id))


@router.get(
    "/{job_id}/report.html",
    operation_id="getJobReportPage",
    summary="The report as a self-contained HTML page with plots (no external resources)",
    response_class=Response,
    responses={
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "The report page.",
        },
        **problems(404, 409),
    },
)
def get_job_report_page(
    job_id: str, store: StoreDep, blobs: BlobsDep, tenant: TenantDep
) -> Response:
    return report_page(blobs, store.get_job(tenant, job_id))


@router.get(
    "/{job_id}/artifacts/{name}",
    operation_id="downloadJobArtifact",
    summary="Download an artifact: `model` is the pruned model in the input's format",
    response_class=Response,
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": BINARY_SCHEMA}},
            "description": "The artifact.",
        },
        **problems(404),
    },
)
def download_job_artifact(
    job_id: str, name: str, store: StoreDep, blobs: BlobsDep, tenant: TenantDep
) -> Response:
    return artifact_download(blobs, store.get_job(tenant, job_id), name)


def _views(store: JobStore, records: list[JobRecord]) -> list[Job]:
    """Jobs with their callbacks, looked up in one query for the whole page."""
    callbacks = store.webhooks.callbacks_for([r.id for r in records])
    return [job_view(r, callbacks.get(r.id)) for r in records]


def _view(store: JobStore, record: JobRecord) -> Job:
    [job] = _views(store, [record])
    return job
