"""createJob: check the spec against the model, insert the job, send its id to the queue.

When the broker is down the job is withdrawn (deleted) before the 503 goes out: the client
was told it failed, so it must never run later, and a retry with the same Idempotency-Key
creates it afresh instead of finding a job that nobody will ever deliver.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import partial

from api_schemas import JobCreate, ProblemFieldError
from service.problems import BrokerUnavailable, ProblemError
from service.runtime import Services
from service.spec_checks import check_model_usable, check_spec, dataset_lookup
from storage import Conflict, JobRecord, JobStore

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Submission:
    job: JobRecord
    created: bool  # False: an earlier request with the same Idempotency-Key made it


def submit_job(
    services: Services, tenant: str, body: JobCreate, idempotency_key: str | None
) -> Submission:
    store = services.store
    model = store.get_model(tenant, body.model_id)
    check_model_usable(model)
    check_spec(body.spec, model, dataset_lookup(partial(store.get_dataset, tenant)))
    job, created = _insert(store, tenant, body, idempotency_key)
    if created:
        job = _enqueue_or_withdraw(services, job)
    return Submission(job=job, created=created)


def request_hash(body: JobCreate) -> str:
    """Of the request as understood (defaults filled in), so spelling does not matter."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _insert(
    store: JobStore, tenant: str, body: JobCreate, idempotency_key: str | None
) -> tuple[JobRecord, bool]:
    try:
        return store.create_job(
            tenant,
            body.model_id,
            body.spec.model_dump(mode="json"),
            idempotency_key=idempotency_key,
            request_hash=request_hash(body),
        )
    except Conflict as exc:
        message = "already used with a different request body; use a new key for a new job"
        raise ProblemError(
            422,
            "idempotency_key_reused",
            f"{IDEMPOTENCY_HEADER}: {message}",
            errors=[ProblemFieldError(field=IDEMPOTENCY_HEADER, message=message)],
        ) from exc


def _enqueue_or_withdraw(services: Services, job: JobRecord) -> JobRecord:
    try:
        services.tasks.run_job(job.id)
    except BrokerUnavailable:
        if services.store.withdraw_job(job.id):
            raise
        # A worker claimed it meanwhile: the message got through after all.
        return services.store.get_job(job.tenant, job.id)
    return job
