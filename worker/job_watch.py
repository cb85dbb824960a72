"""The parent's side of a running job: progress into the store, lease renewal, cancel.

Progress is throttled (an engine may report every batch) but a new stage is always written,
so the event list shows every stage a job went through, and so is an event whose data says
`"keep": true` (one per training epoch: its loss belongs in the job's history).
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from storage import JobStore

log = logging.getLogger(__name__)

CANCELLED = "cancelled"
LEASE_LOST = "lease_lost"


@dataclass
class JobWatch:
    store: JobStore
    job_id: str
    owner: str
    lease_s: float
    min_event_interval_s: float = 0.25
    _last_stage: str | None = None
    _last_write: float = 0.0
    _pending: dict[str, Any] | None = None
    _next_renewal: float = field(default_factory=time.monotonic)

    def on_progress(self, event: dict[str, Any]) -> bool:
        now = time.monotonic()
        if (
            event["stage"] == self._last_stage
            and now - self._last_write < self.min_event_interval_s
            and not _kept(event)
        ):
            self._pending = event
            return True
        return self._write(event, now)

    def flush(self) -> bool:
        """Write the last throttled event, so the final fraction of a stage is recorded."""
        pending, self._pending = self._pending, None
        return pending is None or self._write(pending, time.monotonic())

    def check(self) -> str | None:
        if not self.flush():
            return LEASE_LOST
        if time.monotonic() >= self._next_renewal:
            # Renew at a third of the lease: two renewals may fail before another delivery may
            # take the job over (RELIABILITY.md: every state write checks the lease).
            if self.store.renew(self.job_id, self.owner, self.lease_s) is None:
                return LEASE_LOST
            self._next_renewal = time.monotonic() + self.lease_s / 3
        job = self.store.get_job(None, self.job_id)
        if job.lease_owner != self.owner or job.status != "running":
            return LEASE_LOST
        return CANCELLED if job.cancel_requested else None

    def _write(self, event: dict[str, Any], now: float) -> bool:
        self._last_stage, self._last_write, self._pending = event["stage"], now, None
        data = event.get("data")
        message = str((data or {}).get("message") or event["stage"])[:500]
        held = self.store.add_event(
            self.job_id, self.owner, event["stage"], event["fraction"], message, data
        )
        if not held:
            log.warning("job %s: lease lost while recording progress", self.job_id)
        return held


def _kept(event: dict[str, Any]) -> bool:
    data = event.get("data")
    return isinstance(data, dict) and data.get("keep") is True
