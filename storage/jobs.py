"""The job store: models, datasets, jobs and their events. The job row is the truth.

One class for its callers, composed of one part per resource over the shared row helpers
(storage/rows.py): models (storage/models.py), datasets (storage/datasets.py), the API's
side of jobs (here) and the worker's leases (storage/leases.py). Every write goes through
`Database.begin` (storage/writes.py).
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.database import Database, job_events, jobs, utcnow
from storage.datasets import DatasetRows
from storage.errors import Conflict
from storage.group_commit import GroupCommit
from storage.ids import new_id
from storage.job_requests import record_request
from storage.leases import Claim, ClaimRefused, LeaseRows
from storage.models import ModelRows
from storage.records import EventRecord, JobRecord
from storage.rows import TableRows
from storage.webhooks import (
    CallbackTarget,
    WebhookStore,
    drop_callback,
    owe_delivery,
    save_callback,
)

__all__ = ["Claim", "ClaimRefused", "JobStore"]


class JobStore(ModelRows, DatasetRows, LeaseRows):
    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine
        self.webhooks = WebhookStore(db)
        self._jobs = TableRows(db, jobs, "job")
        self._group_commit = GroupCommit(db)

    def create_job(
        self,
        tenant: str,
        model_id: str,
        spec: dict[str, Any],
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        callback: CallbackTarget | None = None,
        manifest_sha256: str | None = None,
        request_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Insert a queued job; with an idempotency key, return the existing job instead.

        Returns (job, created). The same key with a different request hash is a Conflict.
        The job's callback and the id of the request that made it go in the same
        transaction: one commit per job.
        """
        if idempotency_key is not None:
            existing = self._by_idempotency_key(tenant, idempotency_key)
            if existing is not None:
                return self._same_request(existing, request_hash), False
        now = utcnow()
        row: dict[str, Any] = {
            "id": new_id("job"),
            "tenant": tenant,
            "model_id": model_id,
            "status": "queued",
            "spec": spec,
            "stage": "queued",
            "fraction": 0.0,
            "attempt": 0,
            "lease_owner": None,
            "lease_expires_at": None,
            "cancel_requested": False,
            "error_code": None,
            "error_message": None,
            "artifacts": [],
            "report": None,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "created_at": now,
            "enqueued_at": now,
            "started_at": None,
            "finished_at": None,
            "manifest_sha256": manifest_sha256,
        }

        def insert(conn: Connection) -> None:
            # Parameters, not `.values(**row)`: one compiled statement, cached, for every
            # job (half the CPU of the insert).
            conn.execute(jobs.insert(), [row])
            if callback is not None:
                save_callback(conn, row["id"], callback)
            if request_id is not None:
                record_request(conn, row["id"], request_id)

        try:
            self._group_commit.run(insert)
        except sa.exc.IntegrityError:
            # A concurrent request with the same key won the insert.
            existing = self._by_idempotency_key(tenant, idempotency_key or "")
            if existing is None:
                raise
            return self._same_request(existing, request_hash), False
        return JobRecord(**row), True

    def withdraw_job(self, job_id: str) -> bool:
        """Delete a job no delivery has touched: its enqueue failed and the client was told
        so, so nothing may run it later. False when a worker already claimed it."""
        with self.db.begin() as conn:
            deleted = conn.execute(
                jobs.delete().where(
                    jobs.c.id == job_id, jobs.c.status == "queued", jobs.c.attempt == 0
                )
            ).rowcount
            if deleted:
                drop_callback(conn, job_id)
        return bool(deleted)

    def get_job(self, tenant: str | None, job_id: str) -> JobRecord:
        return JobRecord(**self._jobs.get(tenant, job_id))

    def list_jobs(
        self,
        tenant: str,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        manifest_sha256: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        where = [jobs.c.status == status] if status else []
        if manifest_sha256:
            where.append(jobs.c.manifest_sha256 == manifest_sha256)
        rows, next_cursor = self._jobs.page(tenant, limit, cursor, where)
        return [JobRecord(**r) for r in rows], next_cursor

    def identical_succeeded(self, tenant: str, manifest_sha256: str) -> JobRecord | None:
        """The newest succeeded job of this tenant with this manifest: its artifacts are the
        bytes a new job would write."""
        found, _ = self.list_jobs(tenant, 1, None, "succeeded", manifest_sha256)
        return found[0] if found else None

    def job_for_key(
        self, tenant: str, idempotency_key: str, request_hash: str | None
    ) -> JobRecord | None:
        """The job an earlier request with this key made; Conflict if its body differed."""
        existing = self._by_idempotency_key(tenant, idempotency_key)
        return None if existing is None else self._same_request(existing, request_hash)

    def request_cancel(self, tenant: str, job_id: str) -> JobRecord:
        """A queued job ends `cancelled` now; a running one is flagged for its worker.

        Cancelling a job that already ended is a Conflict, except a second cancel of a
        cancelled job, which answers the same job again.
        """
        job = self.get_job(tenant, job_id)
        now = utcnow()
        with self.db.begin() as conn:
            cancelled = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == "queued")
                .values(
                    status="cancelled",
                    stage="cancelled",
                    finished_at=now,
                    cancel_requested=True,
                )
            ).rowcount
            if cancelled:
                owe_delivery(conn, job_id, "cancelled", now)
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == "running")
                .values(cancel_requested=True)
            )
        job = self.get_job(tenant, job_id)
        if job.status in ("succeeded", "failed"):
            raise Conflict(f"job {job_id!r} already ended as {job.status}")
        return job

    def list_events(self, job_id: str, after: int = 0, limit: int = 1000) -> list[EventRecord]:
        query = (
            job_events.select()
            .where(job_events.c.job_id == job_id, job_events.c.id > after)
            .order_by(job_events.c.id)
            .limit(limit)
        )
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            EventRecord(
                seq=r["id"],
                job_id=r["job_id"],
                attempt=r["attempt"],
                at=r["at"],
                stage=r["stage"],
                fraction=r["fraction"],
                message=r["message"],
                data=r["data"],
            )
            for r in rows
        ]

    def queued_before(self, cutoff: datetime, limit: int = 100) -> list[JobRecord]:
        """Jobs still queued since before `cutoff`: the reconciler re-enqueues these."""
        query = (
            jobs.select()
            .where(jobs.c.status == "queued", jobs.c.enqueued_at < cutoff)
            .order_by(jobs.c.enqueued_at)
            .limit(limit)
        )
        with self.db.engine.connect() as conn:
            return [JobRecord(**r) for r in conn.execute(query).mappings().all()]

    def running_with_expired_lease(self, now: datetime, limit: int = 100) -> list[JobRecord]:
        query = (
            jobs.select()
            .where(jobs.c.status == "running", jobs.c.lease_expires_at < now)
            .limit(limit)
        )
        with self.db.engine.connect() as conn:
            return [JobRecord(**r) for r in conn.execute(query).mappings().all()]

    def mark_enqueued(self, job_id: str) -> None:
        with self.db.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(enqueued_at=utcnow()))

    def _by_idempotency_key(self, tenant: str, key: str) -> JobRecord | None:
        query = jobs.select().where(jobs.c.tenant == tenant, jobs.c.idempotency_key == key)
        with self.db.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return JobRecord(**row) if row else None

    @staticmethod
    def _same_request(existing: JobRecord, request_hash: str | None) -> JobRecord:
        if existing.request_hash != request_hash:
            raise Conflict("this Idempotency-Key was already used with a different request body")
        return existing
