"""Re-sends jobs whose message was lost, so the job row, not the broker, decides what runs.

- `queued` for longer than the broker could take to deliver it (its visibility window, and
  never under a few minutes): the send failed after the row was written, or the message was
  lost (Redis flushed, a worker died before acking on a transport without redelivery).
- `running` with an expired lease: its worker died. Re-sending is safe: the worker's claim
  takes over the expired lease, and past the attempt cap fails the job as `worker_lost`.

Every re-send marks the job enqueued, so a job that stays stuck is re-sent once per window,
not once per pass. Several API replicas may each run a reconciler: a duplicate message is
harmless, the claim lets one delivery run.
"""

import asyncio
import logging
from datetime import datetime, timedelta

from fastapi.concurrency import run_in_threadpool

from service.problems import BrokerUnavailable
from service.tasks import TaskSender
from shears_config import Settings
from storage import JobRecord, JobStore
from storage.database import utcnow

log = logging.getLogger("shears.reconciler")


class Reconciler:
    def __init__(self, store: JobStore, tasks: TaskSender, settings: Settings) -> None:
        self.store = store
        self.tasks = tasks
        self.interval_s = settings.reconcile_interval_s
        # Never sooner than the broker could deliver it (its visibility window with Redis;
        # the embedded transport has none), and at most once per `reconcile_min_resend_s`.
        window = settings.reconcile_queued_after_s
        if window is None:
            window = 0.0 if settings.uses_embedded_broker else settings.visibility_timeout_s
        min_gap = settings.reconcile_min_resend_s
        self.queued_after = timedelta(seconds=max(window, min_gap))
        self.lost_resend_gap = timedelta(seconds=max(settings.lease_s, min_gap))

    def run_once(self, now: datetime | None = None) -> list[str]:
        """One pass; returns the ids re-sent. Stops at the first broker failure."""
        now = now or utcnow()
        stale = self.store.queued_before(now - self.queued_after)
        lost = [
            job
            for job in self.store.running_with_expired_lease(now)
            if _not_resent_since_lease_expired(job, now, self.lost_resend_gap)
        ]
        for job in [*stale, *lost]:
            self.tasks.run_job(job.id)
            self.store.mark_enqueued(job.id)
        return [job.id for job in [*stale, *lost]]

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                resent = await run_in_threadpool(self.run_once)
            except BrokerUnavailable as exc:
                log.warning("reconciler: broker unavailable, retrying next pass: %s", exc.detail)
                continue
            except Exception:  # a bad pass must not end reconciliation for good
                log.exception("reconciler pass failed")
                continue
            if resent:
                log.info("reconciler re-sent %d job(s): %s", len(resent), ", ".join(resent))


def _not_resent_since_lease_expired(job: JobRecord, now: datetime, gap: timedelta) -> bool:
    """Re-send as soon as the lease has expired (recovery within a lease and a pass), then at
    most once per `gap` while the job stays stuck."""
    expired_at = job.lease_expires_at
    resent_after_expiry = expired_at is not None and job.enqueued_at >= expired_at
    return not resent_after_expiry or job.enqueued_at < now - gap
