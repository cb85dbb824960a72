"""createJob: check the spec against the model, insert the job, send its id to the queue.

When the broker is down the job is withdrawn (deleted) before the 503 goes out: the client
was told it failed, so it must never run later, and a retry with the same Idempotency-Key
creates it afresh instead of finding a job that nobody will ever deliver.

`reuse: identical` answers an earlier succeeded job with the same manifest instead of
queueing. It is checked after the Idempotency-Key: a key already used answers its own job
(a retry must never turn into another job); a reused answer binds no key, since nothing was
created, so a retry with that key finds the same earlier job again the same way.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from api_schemas import JobCreate, ProblemFieldError
from service.callback_urls import CallbackRefused, resolve
from service.memory_budget import check_memory_budget
from service.problems import BrokerUnavailable, Invalid, ProblemError
from service.runtime import Services
from service.secret_box import SecretBox
from service.spec_checks import check_model_usable, check_spec, dataset_lookup
from shears_config.logging import current_context, log_context
from shears_manifest import build_manifest, dataset_roles, manifest_sha256
from storage import CallbackRecord, CallbackTarget, Conflict, JobRecord, JobStore
from storage.webhooks import fresh_callback

IDEMPOTENCY_HEADER = "Idempotency-Key"
log = logging.getLogger("shears.api")


@dataclass(frozen=True)
class Submission:
    job: JobRecord
    created: bool  # False: an earlier request (same Idempotency-Key, or reuse) made it
    # Known without asking the store when this request created the job.
    callback: CallbackRecord | None = None


def submit_job(
    services: Services, tenant: str, body: JobCreate, idempotency_key: str | None
) -> Submission:
    store = services.store
    callback = _callback_target(body, services.settings.webhook_allow_private, services.secrets)
    model = store.get_model(tenant, body.model_id)
    check_model_usable(model)
    check_spec(body.spec, model, dataset_lookup(partial(store.get_dataset, tenant)))
    check_memory_budget(body.spec, model, services.settings.measure_memory_bytes)
    spec = body.spec.model_dump(mode="json")
    manifest = _manifest_sha256(store, tenant, model.sha256, spec)
    if body.reuse == "identical":
        earlier = _identical(store, tenant, body, idempotency_key, manifest)
        if earlier is not None:
            return Submission(job=earlier, created=False)
    job, created = _insert(store, tenant, body, spec, idempotency_key, callback, manifest)
    if not created:
        return Submission(job=job, created=False)
    with log_context(job_id=job.id):
        log.info("job %s created for model %s", job.id, job.model_id)
    job = _enqueue_or_withdraw(services, job)
    return Submission(job, True, fresh_callback(job.id, callback) if callback else None)


def _manifest_sha256(
    store: JobStore, tenant: str, model_sha256: str, document: dict[str, Any]
) -> str:
    """The manifest the worker's engine will compute, from the same stored sha256s and the
    same validated spec (`document`, dumped as JSON); versions are this process's (the
    worker's when they share an image, else the engine pins of the installed `shears`)."""
    datasets = {
        dataset_id: store.get_dataset(tenant, dataset_id).sha256
        for dataset_id in dataset_roles(document).values()
    }
    return manifest_sha256(build_manifest(model_sha256, datasets, document))


def _identical(
    store: JobStore, tenant: str, body: JobCreate, idempotency_key: str | None, manifest: str
) -> JobRecord | None:
    if idempotency_key is not None:
        try:
            keyed = store.job_for_key(tenant, idempotency_key, request_hash(body))
        except Conflict as exc:
            raise _key_reused() from exc
        if keyed is not None:
            return keyed
    earlier = store.identical_succeeded(tenant, manifest)
    if earlier is not None:
        with log_context(job_id=earlier.id):
            log.info("job %s answered a request with the same manifest", earlier.id)
    return earlier


def request_hash(body: JobCreate) -> str:
    """Of the request as understood (defaults filled in), so spelling does not matter."""
    request = body.model_dump(mode="json")
    if body.callback_secret is not None:  # dumped masked: hash it so a new secret is a new body
        secret = body.callback_secret.get_secret_value()
        request["callback_secret"] = hashlib.sha256(secret.encode()).hexdigest()
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _callback_target(
    body: JobCreate, allow_private: bool, secrets: SecretBox
) -> CallbackTarget | None:
    """The webhook target, refused (422 naming `callback_url`) where it may not be called."""
    if body.callback_url is None or body.callback_secret is None:
        return None
    url = str(body.callback_url)
    try:
        resolve(url, allow_private)
    except CallbackRefused as exc:
        raise Invalid("callback_url", str(exc), "callback_url_refused") from exc
    return CallbackTarget(url=url, secret=secrets.seal(body.callback_secret.get_secret_value()))


def _insert(
    store: JobStore,
    tenant: str,
    body: JobCreate,
    spec: dict[str, Any],
    idempotency_key: str | None,
    callback: CallbackTarget | None,
    manifest_sha256: str,
) -> tuple[JobRecord, bool]:
    # The request id is stored with the job, before the message goes out: every attempt's
    # worker lines (and a re-send by the reconciler) name the request that made the job.
    request_id = current_context().get("request_id")
    try:
        return store.create_job(
            tenant,
            body.model_id,
            spec,
            idempotency_key=idempotency_key,
            request_hash=request_hash(body),
            callback=callback,
            manifest_sha256=manifest_sha256,
            request_id=request_id if isinstance(request_id, str) else None,
        )
    except Conflict as exc:
        raise _key_reused() from exc


def _key_reused() -> ProblemError:
    message = "already used with a different request body; use a new key for a new job"
    return ProblemError(
        422,
        "idempotency_key_reused",
        f"{IDEMPOTENCY_HEADER}: {message}",
        errors=[ProblemFieldError(field=IDEMPOTENCY_HEADER, message=message)],
    )


def _enqueue_or_withdraw(services: Services, job: JobRecord) -> JobRecord:
    try:
        services.tasks.run_job(job.id)
    except BrokerUnavailable:
        if services.store.withdraw_job(job.id):
            raise
        # A worker claimed it meanwhile: the message got through after all.
        return services.store.get_job(job.tenant, job.id)
    return job
