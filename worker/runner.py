"""Run one delivery of a job: claim it, run the engine in a sandboxed child, record the end.

A delivery that the store refuses (finished, leased by another delivery, over the attempt
cap) changes nothing: RELIABILITY.md's answer to redelivery (celery#5935) and poison jobs.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shears_config.logging import log_context, tenant_ref
from storage import Claim, ClaimRefused, JobRecord, NotFound
from storage.database import utcnow
from storage.job_requests import JobRequests
from worker import protocol
from worker.artifacts import ResultRejected, check_result, store_artifacts
from worker.context import WorkerContext, new_lease_owner
from worker.job_watch import CANCELLED, JobWatch
from worker.protocol import ChildError
from worker.sandbox import Limits
from worker.supervisor import Stopped, run_child
from worker.workdir import place_blob, private_workdir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What this delivery did: `succeeded`, `failed`, `cancelled`, `refused` (detail: the
    store's reason), `lease_lost` (another delivery owns the job; nothing was written) or
    `rerun` (the child was killed from outside; the next attempt follows)."""

    status: str
    detail: str | None = None
    retry_after_s: float | None = None


class InputError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def run_job(
    ctx: WorkerContext, job_id: str, timeout_errors: tuple[type[BaseException], ...] = ()
) -> RunOutcome:
    owner = new_lease_owner()
    with log_context(job_id=job_id):
        claim = ctx.store.claim(job_id, owner, ctx.settings.lease_s, ctx.settings.max_attempts)
        if isinstance(claim, ClaimRefused):
            return _refused(ctx, job_id, claim)
    # Every line of this attempt, the engine child's included (worker/supervisor.py), names
    # the job, the attempt and the request that created the job.
    with log_context(**_job_log_fields(ctx, claim.job)):
        log.info("job %s: attempt %d claimed by %s", job_id, claim.job.attempt, owner)
        return _run_attempt(ctx, claim, timeout_errors)


def _job_log_fields(ctx: WorkerContext, job: JobRecord) -> dict[str, str | int | None]:
    return {
        "job_id": job.id,
        "attempt": job.attempt,
        "request_id": _request_id(ctx, job.id),
        "tenant": tenant_ref(job.tenant),
    }


def _request_id(ctx: WorkerContext, job_id: str) -> str | None:
    try:
        return JobRequests(ctx.store.db).request_id(job_id)
    except Exception:  # a log field is not worth failing a claimed attempt over
        log.exception("job %s: could not read its request id", job_id)
        return None


def _run_attempt(
    ctx: WorkerContext, claim: Claim, timeout_errors: tuple[type[BaseException], ...]
) -> RunOutcome:
    job_id = claim.job.id
    try:
        return _run_claimed(ctx, claim)
    except timeout_errors:
        return _finish_failed(ctx, claim, ChildError(protocol.TIMEOUT, "the job ran too long"))
    except Exception as exc:
        log.exception("job %s: the worker failed", job_id)
        error = ChildError(protocol.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        return _finish_failed(ctx, claim, error)
    except BaseException:
        _release(ctx, claim)
        raise


def _release(ctx: WorkerContext, claim: Claim) -> None:
    """The worker is stopping this delivery (Celery's cold shutdown or cancel raises
    SystemExit in the pool process) and requeues its message: let the lease lapse now, so
    the redelivery claims the job at once instead of after `lease_s`."""
    try:
        ctx.store.renew(claim.job.id, claim.owner, lease_s=0.0)
    except Exception:
        log.exception("job %s: could not release the lease; it expires by itself", claim.job.id)
    else:
        log.warning("job %s: stopped by the worker; lease released for a redelivery", claim.job.id)


def _run_claimed(ctx: WorkerContext, claim: Claim) -> RunOutcome:
    job = claim.job
    with private_workdir(ctx.settings.data_dir, f"job-{job.id}") as workdir:
        try:
            request, model_format = _prepare_inputs(ctx, job, workdir)
        except InputError as exc:
            return _finish_failed(ctx, claim, ChildError(exc.code, str(exc)))
        watch = JobWatch(ctx.store, job.id, claim.owner, ctx.settings.lease_s)
        limits = Limits(ctx.settings.child_memory_bytes, ctx.settings.job_time_limit_s)
        ending = run_child(workdir, request, limits, watch)
        if isinstance(ending, Stopped):
            return _stopped(ctx, claim, ending)
        watch.flush()
        if isinstance(ending, ChildError) and _may_rerun(ctx, claim, ending):
            return _rerun(ctx, claim, ending)
        if isinstance(ending, ChildError):
            return _finish_failed(ctx, claim, ending)
        return _succeed(ctx, claim, ending, model_format, workdir)


def _may_rerun(ctx: WorkerContext, claim: Claim, error: ChildError) -> bool:
    return error.rerun and claim.job.attempt < ctx.settings.max_attempts


def _rerun(ctx: WorkerContext, claim: Claim, error: ChildError) -> RunOutcome:
    """The child was killed from outside: free the lease so the next delivery (the task's
    retry, or the reconciler) claims the next attempt at once. At the cap, it fails."""
    _release(ctx, claim)
    log.warning(
        "job %s: attempt %d lost its child (%s)", claim.job.id, claim.job.attempt, error.message
    )
    return RunOutcome("rerun", error.code, retry_after_s=0.0)


def _prepare_inputs(
    ctx: WorkerContext, job: JobRecord, workdir: Path
) -> tuple[dict[str, Any], str]:
    try:
        model = ctx.store.get_model(None, job.model_id)
    except NotFound as exc:
        raise InputError(
            protocol.INVALID_MODEL, f"model {job.model_id!r} no longer exists"
        ) from exc
    if model.status != "ready" or model.format is None:
        raise InputError(protocol.INVALID_MODEL, model.error or f"model is {model.status}")
    model_file = Path(protocol.INPUT_DIR) / f"model{protocol.MODEL_SUFFIXES[model.format]}"
    place_blob(ctx.blobs, model.sha256, workdir / model_file)
    placed = {
        dataset_id: _place_dataset(ctx, job.tenant, dataset_id, workdir, index)
        for index, dataset_id in enumerate(sorted(set(_dataset_ids(job.spec))))
    }
    request = {
        "kind": "prune",
        "model": str(model_file),
        "model_name": model.name,  # the upload's name, for the report's title
        "format": model.format,
        "spec": job.spec,
        "datasets": {dataset_id: str(path) for dataset_id, (path, _) in placed.items()},
        # The store knows the files' sha256s: the report's manifest needs no second read.
        "digests": {
            "model": model.sha256,
            "datasets": {dataset_id: sha256 for dataset_id, (_, sha256) in placed.items()},
        },
        "device": ctx.settings.device,
        "measure_memory_bytes": ctx.settings.measure_memory_bytes,
    }
    return request, model.format


def _place_dataset(
    ctx: WorkerContext, tenant: str, dataset_id: str, workdir: Path, index: int
) -> tuple[Path, str]:
    """A dataset of the job's own tenant: another tenant's id is as absent as a wrong one.
    Returns where it lies in the work dir, and its sha256."""
    try:
        dataset = ctx.store.get_dataset(tenant, dataset_id)
    except NotFound as exc:
        raise InputError(protocol.INVALID_SPEC, f"dataset {dataset_id!r} not found") from exc
    relative = Path(protocol.INPUT_DIR) / f"dataset-{index}.npz"
    place_blob(ctx.blobs, dataset.sha256, workdir / relative)
    return relative, dataset.sha256


def _dataset_ids(spec: Any) -> Iterator[str]:
    """Every `dataset_id` in the spec (calibration, retrain, evaluation, and future blocks)."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "dataset_id" and isinstance(value, str):
                yield value
            else:
                yield from _dataset_ids(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from _dataset_ids(item)


def _succeed(
    ctx: WorkerContext,
    claim: Claim,
    result: dict[str, Any],
    model_format: str,
    workdir: Path,
) -> RunOutcome:
    try:
        checked = check_result(result, workdir)
    except ResultRejected as exc:
        return _finish_failed(ctx, claim, ChildError(protocol.INTERNAL_ERROR, str(exc)))
    artifacts = store_artifacts(ctx.blobs, checked, model_format, workdir)
    written = ctx.store.finish(
        claim.job.id,
        claim.owner,
        "succeeded",
        artifacts=artifacts,
        report=checked.report,
        manifest_sha256=checked.report.get("manifest_sha256"),  # what ran, not what was asked
    )
    return _finished(claim, "succeeded", None, written)


def _stopped(ctx: WorkerContext, claim: Claim, stopped: Stopped) -> RunOutcome:
    if stopped.reason == CANCELLED:
        written = ctx.store.finish(claim.job.id, claim.owner, "cancelled")
        return _finished(claim, "cancelled", None, written)
    log.warning("job %s: lease lost, child killed; nothing written", claim.job.id)
    return RunOutcome("lease_lost")


def _finish_failed(ctx: WorkerContext, claim: Claim, error: ChildError) -> RunOutcome:
    written = ctx.store.finish(
        claim.job.id,
        claim.owner,
        "failed",
        error_code=error.code,
        error_message=error.message,
    )
    return _finished(claim, "failed", error.code, written)


def _finished(claim: Claim, status: str, code: str | None, written: bool) -> RunOutcome:
    if not written:
        log.warning("job %s: lease lost before it could end %s", claim.job.id, status)
        return RunOutcome("lease_lost")
    log.info("job %s: %s%s", claim.job.id, status, f" ({code})" if code else "")
    return RunOutcome(status, code)


def _refused(ctx: WorkerContext, job_id: str, refusal: ClaimRefused) -> RunOutcome:
    log.info("job %s: delivery refused (%s); acknowledged and dropped", job_id, refusal.reason)
    retry_after = None
    if refusal.reason == "leased":
        job = ctx.store.get_job(None, job_id)
        if job.lease_expires_at is not None:
            retry_after = max(1.0, (job.lease_expires_at - utcnow()).total_seconds() + 1.0)
    return RunOutcome("refused", refusal.reason, retry_after)
