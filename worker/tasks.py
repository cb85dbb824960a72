"""The Celery tasks: ids in, nothing out. The work is in plain functions (worker/runner.py,
worker/inspection.py) that tests call directly. The API sends these by name."""

import logging

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from shears_config import TASK_INSPECT_MODEL, TASK_RUN_JOB
from shears_config.logging import log_context
from worker import inspection, runner, warm
from worker.context import get_context

log = logging.getLogger(__name__)

# A delivery refused because another one holds a still-valid lease is retried once that
# lease would have expired: if its holder died (kill -9, OOM of the pool process), the job
# resumes without waiting for the reconciler. A live holder renews, and the retry is refused.
LEASED_RETRIES = 3


@shared_task(name=TASK_RUN_JOB, bind=True, max_retries=LEASED_RETRIES)  # type: ignore[untyped-decorator]
def run_job(self: Task, job_id: str) -> None:
    outcome = runner.run_job(get_context(), job_id, timeout_errors=(SoftTimeLimitExceeded,))
    # The next task's child starts now that this job is recorded; not on a shutdown, whose
    # SystemExit passes by here.
    warm.refill()
    if outcome.retry_after_s is not None and self.request.retries < LEASED_RETRIES:
        raise self.retry(countdown=outcome.retry_after_s)


@shared_task(name=TASK_INSPECT_MODEL)  # type: ignore[untyped-decorator]
def inspect_model(
    model_id: str, format_hint: str | None = None, request_id: str | None = None
) -> None:
    """`request_id`: the upload's (or the retry's), so this worker's lines and the child's
    carry the id the client was given."""
    ctx = get_context()
    with log_context(request_id=request_id):
        try:
            inspection.inspect_model(ctx, model_id, format_hint)
        except SoftTimeLimitExceeded:
            ctx.store.set_model_invalid(model_id, "opening the model took too long", "timeout")
        except Exception:  # left `validating`, the upload would wait forever
            log.exception("model %s: inspection failed in Shears, not in the file", model_id)
            inspection.mark_failed(ctx, model_id)
    warm.refill()
