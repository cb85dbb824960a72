"""Leases: a delivery of a job runs only after `claim` grants it one; every later write
names the lease owner and is refused once the lease has passed to someone else
(RELIABILITY.md). This is the worker's side of the job store.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.database import Database, job_events, jobs, utcnow
from storage.errors import NotFound
from storage.records import JobRecord
from storage.rows import TableRows
from storage.stage_times import record_job_times
from storage.webhooks import owe_delivery

FINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Claim:
    job: JobRecord
    owner: str


@dataclass(frozen=True)
class ClaimRefused:
    """Why a delivery may not run: `finished`, `leased` (another delivery holds it),
    `attempts_exhausted` (the job was just failed as `worker_lost`), or `missing`."""

    reason: str


class LeaseRows:
    """The lease half of the job store (storage/jobs.py composes the resources)."""

    db: Database

    def _job(self, job_id: str) -> JobRecord:
        return JobRecord(**TableRows(self.db, jobs, "job").get(None, job_id))

    def claim(
        self, job_id: str, owner: str, lease_s: float, max_attempts: int
    ) -> Claim | ClaimRefused:
        """Grant this delivery a lease if the job may run now; count the attempt.

        One UPDATE decides, so two deliveries racing for the same job cannot both win.
        """
        now = utcnow()
        claimable = sa.or_(
            jobs.c.status == "queued",
            sa.and_(jobs.c.status == "running", jobs.c.lease_expires_at < now),
        )
        with self.db.begin() as conn:
            won = conn.execute(
                jobs.update()
                .where(
                    jobs.c.id == job_id,
                    claimable,
                    jobs.c.attempt < max_attempts,
                    jobs.c.cancel_requested.is_(False),
                )
                .values(
                    status="running",
                    attempt=jobs.c.attempt + 1,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    stage="starting",
                    started_at=sa.func.coalesce(jobs.c.started_at, now),
                )
            ).rowcount
        if won:
            return Claim(job=self._job(job_id), owner=owner)
        return self._refusal(job_id, max_attempts, now)

    def renew(self, job_id: str, owner: str, lease_s: float) -> JobRecord | None:
        """Extend the lease; None when this owner no longer holds the job."""
        now = utcnow()
        with self.db.begin() as conn:
            held = conn.execute(
                jobs.update()
                .where(*self._held(job_id, owner))
                .values(lease_expires_at=now + timedelta(seconds=lease_s))
            ).rowcount
        return self._job(job_id) if held else None

    def add_event(
        self,
        job_id: str,
        owner: str,
        stage: str,
        fraction: float,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Record progress; False (and nothing written) when the lease is no longer ours."""
        fraction = min(max(fraction, 0.0), 1.0)
        with self.db.begin() as conn:
            held = conn.execute(
                jobs.update()
                .where(*self._held(job_id, owner))
                .values(stage=stage, fraction=fraction)
            ).rowcount
            if not held:
                return False
            attempt = conn.execute(
                sa.select(jobs.c.attempt).where(jobs.c.id == job_id)
            ).scalar_one()
            conn.execute(
                job_events.insert().values(
                    job_id=job_id,
                    attempt=attempt,
                    at=utcnow(),
                    stage=stage,
                    fraction=fraction,
                    message=message,
                    data=data,
                )
            )
        return True

    def finish(
        self,
        job_id: str,
        owner: str,
        status: str,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        artifacts: Sequence[dict[str, Any]] = (),
        report: dict[str, Any] | None = None,
        manifest_sha256: str | None = None,
    ) -> bool:
        """Write the final state if this owner still holds the lease; False otherwise.

        ``manifest_sha256``, when given, replaces the one computed at creation: it is what
        actually ran (a worker with other versions than the API's makes another)."""
        if status not in FINAL:
            raise ValueError(f"{status!r} is not a final status")
        now = utcnow()
        ran = {"manifest_sha256": manifest_sha256} if manifest_sha256 else {}
        with self.db.begin() as conn:
            done = conn.execute(
                jobs.update()
                .where(*self._held(job_id, owner))
                .values(
                    **ran,
                    status=status,
                    stage=status,
                    fraction=1.0 if status == "succeeded" else jobs.c.fraction,
                    error_code=error_code,
                    error_message=error_message,
                    artifacts=list(artifacts),
                    report=report,
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            ).rowcount
            if done:
                owe_delivery(conn, job_id, status, now)
                record_job_times(conn, job_id, status, now)
                _final_event(
                    conn,
                    job_id,
                    now,
                    status,
                    error_message or status,
                    {"code": error_code} if error_code else None,
                )
        return bool(done)

    def fail_unclaimed(self, job_id: str, error_code: str, message: str) -> bool:
        """Fail a job no delivery holds (attempt cap, lost lease); no-op if it has ended."""
        now = utcnow()
        with self.db.begin() as conn:
            done = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status.notin_(FINAL))
                .values(
                    status="failed",
                    stage="failed",
                    error_code=error_code,
                    error_message=message,
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            ).rowcount
            if done:
                owe_delivery(conn, job_id, "failed", now)
                record_job_times(conn, job_id, "failed", now)
                _final_event(conn, job_id, now, "failed", message, {"code": error_code})
        return bool(done)

    @staticmethod
    def _held(job_id: str, owner: str) -> tuple[Any, ...]:
        return (jobs.c.id == job_id, jobs.c.status == "running", jobs.c.lease_owner == owner)

    def _refusal(self, job_id: str, max_attempts: int, now: datetime) -> ClaimRefused:
        try:
            job = self._job(job_id)
        except NotFound:
            return ClaimRefused("missing")
        if job.finished:
            return ClaimRefused("finished")
        if job.cancel_requested:
            self.fail_or_cancel_abandoned(job)
            return ClaimRefused("finished")
        lease_free = job.status == "queued" or (
            job.lease_expires_at is not None and job.lease_expires_at < now
        )
        if lease_free and job.attempt >= max_attempts:
            self.fail_unclaimed(
                job_id,
                "worker_lost",
                f"the job was started {job.attempt} times and its worker was lost each time; "
                "it may crash or exhaust the worker",
            )
            return ClaimRefused("attempts_exhausted")
        return ClaimRefused("leased")

    def fail_or_cancel_abandoned(self, job: JobRecord) -> None:
        """A cancel was asked and the worker that held the job is gone: it ends cancelled."""
        now = utcnow()
        with self.db.begin() as conn:
            cancelled = conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id, jobs.c.status.notin_(FINAL))
                .values(
                    status="cancelled",
                    stage="cancelled",
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            ).rowcount
            if cancelled:
                owe_delivery(conn, job.id, "cancelled", now)


def _final_event(
    conn: Connection,
    job_id: str,
    at: datetime,
    status: str,
    message: str,
    data: dict[str, Any] | None,
) -> None:
    """The event that ends an attempt, numbered with the attempt that ended."""
    conn.execute(
        job_events.insert().values(
            job_id=job_id,
            attempt=sa.select(jobs.c.attempt).where(jobs.c.id == job_id).scalar_subquery(),
            at=at,
            stage=status,
            fraction=1.0 if status == "succeeded" else 0.0,
            message=message,
            data=data,
        )
    )
