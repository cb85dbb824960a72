"""The job store: models, datasets, jobs and their events. The job row is the truth.

A delivery of a job runs only after `claim` grants it a lease; every later write names the
lease owner and is refused once the lease has passed to someone else (RELIABILITY.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from storage.database import Database, datasets, job_events, jobs, models, utcnow
from storage.errors import Conflict, NotFound
from storage.ids import decode_cursor, encode_cursor, new_id
from storage.records import DatasetRecord, EventRecord, JobRecord, ModelRecord
from storage.stage_times import record_job_times
from storage.webhooks import (
    CallbackTarget,
    WebhookStore,
    drop_callback,
    owe_delivery,
    save_callback,
)

_FINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Claim:
    job: JobRecord
    owner: str


@dataclass(frozen=True)
class ClaimRefused:
    """Why a delivery may not run: `finished`, `leased` (another delivery holds it),
    `attempts_exhausted` (the job was just failed as `worker_lost`), or `missing`."""

    reason: str


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine
        self.webhooks = WebhookStore(db)

    # -- models -------------------------------------------------------------------------
    def create_model(self, tenant: str, name: str, sha256: str, size_bytes: int) -> ModelRecord:
        row: dict[str, Any] = {
            "id": new_id("mdl"),
            "tenant": tenant,
            "name": name,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "format": None,
            "status": "validating",
            "info": None,
            "error": None,
            "error_code": None,
            "created_at": utcnow(),
        }
        with self.engine.begin() as conn:
            conn.execute(models.insert().values(**row))
        return ModelRecord(**row)

    def get_model(self, tenant: str | None, model_id: str) -> ModelRecord:
        return ModelRecord(**self._row(models, tenant, model_id, "model"))

    def list_models(
        self, tenant: str, limit: int, cursor: str | None
    ) -> tuple[list[ModelRecord], str | None]:
        rows, next_cursor = self._page(models, tenant, limit, cursor)
        return [ModelRecord(**r) for r in rows], next_cursor

    def set_model_validated(self, model_id: str, fmt: str, info: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                models.update()
                .where(models.c.id == model_id)
                .values(status="ready", format=fmt, info=info, error=None, error_code=None)
            )

    def set_model_invalid(self, model_id: str, error: str, code: str = "invalid_model") -> None:
        """The file's fault: it cannot be pruned, whoever retries."""
        self._end_inspection(model_id, "invalid", error, code)

    def set_model_failed(self, model_id: str, error: str, code: str = "internal_error") -> None:
        """Our fault: the file may be fine, and `retry_model_inspection` tries again."""
        self._end_inspection(model_id, "failed", error, code)

    def _end_inspection(self, model_id: str, status: str, error: str, code: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                models.update()
                .where(models.c.id == model_id, models.c.status == "validating")
                .values(status=status, error=error, error_code=code)
            )

    def retry_model_inspection(self, tenant: str, model_id: str) -> ModelRecord:
        """A `failed` model goes back to `validating`; other states are returned unchanged
        (a `validating` or `ready` model needs no retry; an `invalid` one would fail again)."""
        with self.engine.begin() as conn:
            conn.execute(
                models.update()
                .where(models.c.id == model_id, models.c.tenant == tenant)
                .where(models.c.status == "failed")
                .values(status="validating", error=None, error_code=None)
            )
        return self.get_model(tenant, model_id)

    def delete_model(self, tenant: str, model_id: str) -> ModelRecord:
        """Delete the row; return it so the caller can drop a blob nobody else references."""
        record = self.get_model(tenant, model_id)
        with self.engine.begin() as conn:
            active = conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.model_id == model_id, jobs.c.status.in_(("queued", "running")))
            ).scalar_one()
            if active:
                raise Conflict(f"model {model_id!r} has {active} queued or running job(s)")
            conn.execute(models.delete().where(models.c.id == model_id))
        return record

    def sha256_in_use(self, sha256: str) -> bool:
        with self.engine.connect() as conn:
            used = (
                conn.execute(
                    sa.select(models.c.id).where(models.c.sha256 == sha256).limit(1)
                ).first()
                or conn.execute(
                    sa.select(datasets.c.id).where(datasets.c.sha256 == sha256).limit(1)
                ).first()
            )
            if used:
                return True
            for (artifacts,) in conn.execute(sa.select(jobs.c.artifacts)):
                if any(a.get("sha256") == sha256 for a in artifacts or []):
                    return True
        return False

    # -- datasets -----------------------------------------------------------------------
    def create_dataset(
        self,
        tenant: str,
        name: str,
        sha256: str,
        size_bytes: int,
        samples: int,
        arrays: list[dict[str, Any]],
    ) -> DatasetRecord:
        row: dict[str, Any] = {
            "id": new_id("ds"),
            "tenant": tenant,
            "name": name,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "samples": samples,
            "arrays": arrays,
            "created_at": utcnow(),
        }
        with self.engine.begin() as conn:
            conn.execute(datasets.insert().values(**row))
        return DatasetRecord(**row)

    def get_dataset(self, tenant: str | None, dataset_id: str) -> DatasetRecord:
        return DatasetRecord(**self._row(datasets, tenant, dataset_id, "dataset"))

    def list_datasets(
        self, tenant: str, limit: int, cursor: str | None
    ) -> tuple[list[DatasetRecord], str | None]:
        rows, next_cursor = self._page(datasets, tenant, limit, cursor)
        return [DatasetRecord(**r) for r in rows], next_cursor

    def delete_dataset(self, tenant: str, dataset_id: str) -> DatasetRecord:
        record = self.get_dataset(tenant, dataset_id)
        with self.engine.begin() as conn:
            conn.execute(datasets.delete().where(datasets.c.id == dataset_id))
        return record

    # -- jobs: the API side -------------------------------------------------------------
    def create_job(
        self,
        tenant: str,
        model_id: str,
        spec: dict[str, Any],
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        callback: CallbackTarget | None = None,
        manifest_sha256: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Insert a queued job; with an idempotency key, return the existing job instead.

        Returns (job, created). The same key with a different request hash is a Conflict.
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
        try:
            with self.engine.begin() as conn:
                conn.execute(jobs.insert().values(**row))
                if callback is not None:
                    save_callback(conn, row["id"], callback)
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
        with self.engine.begin() as conn:
            deleted = conn.execute(
                jobs.delete().where(
                    jobs.c.id == job_id, jobs.c.status == "queued", jobs.c.attempt == 0
                )
            ).rowcount
            if deleted:
                drop_callback(conn, job_id)
        return bool(deleted)

    def get_job(self, tenant: str | None, job_id: str) -> JobRecord:
        return JobRecord(**self._row(jobs, tenant, job_id, "job"))

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
        rows, next_cursor = self._page(jobs, tenant, limit, cursor, where)
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
        with self.engine.begin() as conn:
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
        with self.engine.connect() as conn:
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
        with self.engine.connect() as conn:
            return [JobRecord(**r) for r in conn.execute(query).mappings().all()]

    def running_with_expired_lease(self, now: datetime, limit: int = 100) -> list[JobRecord]:
        query = (
            jobs.select()
            .where(jobs.c.status == "running", jobs.c.lease_expires_at < now)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [JobRecord(**r) for r in conn.execute(query).mappings().all()]

    def mark_enqueued(self, job_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(enqueued_at=utcnow()))

    # -- jobs: the worker side ----------------------------------------------------------
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
        with self.engine.begin() as conn:
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
            return Claim(job=self.get_job(None, job_id), owner=owner)
        return self._refusal(job_id, max_attempts, now)

    def renew(self, job_id: str, owner: str, lease_s: float) -> JobRecord | None:
        """Extend the lease; None when this owner no longer holds the job."""
        now = utcnow()
        with self.engine.begin() as conn:
            held = conn.execute(
                jobs.update()
                .where(*self._held(job_id, owner))
                .values(lease_expires_at=now + timedelta(seconds=lease_s))
            ).rowcount
        return self.get_job(None, job_id) if held else None

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
        with self.engine.begin() as conn:
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
        if status not in _FINAL:
            raise ValueError(f"{status!r} is not a final status")
        now = utcnow()
        ran = {"manifest_sha256": manifest_sha256} if manifest_sha256 else {}
        with self.engine.begin() as conn:
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
                conn.execute(
                    job_events.insert().values(
                        job_id=job_id,
                        attempt=sa.select(jobs.c.attempt)
                        .where(jobs.c.id == job_id)
                        .scalar_subquery(),
                        at=now,
                        stage=status,
                        fraction=1.0 if status == "succeeded" else 0.0,
                        message=error_message or status,
                        data={"code": error_code} if error_code else None,
                    )
                )
        return bool(done)

    def fail_unclaimed(self, job_id: str, error_code: str, message: str) -> bool:
        """Fail a job no delivery holds (attempt cap, lost lease); no-op if it has ended."""
        now = utcnow()
        with self.engine.begin() as conn:
            done = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status.notin_(_FINAL))
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
                conn.execute(
                    job_events.insert().values(
                        job_id=job_id,
                        attempt=sa.select(jobs.c.attempt)
                        .where(jobs.c.id == job_id)
                        .scalar_subquery(),
                        at=now,
                        stage="failed",
                        fraction=0.0,
                        message=message,
                        data={"code": error_code},
                    )
                )
        return bool(done)

    # -- internals ----------------------------------------------------------------------
    def _row(self, table: sa.Table, tenant: str | None, row_id: str, kind: str) -> Any:
        """One row by id; another tenant's row is NotFound, like a missing one."""
        query = table.select().where(table.c.id == row_id)
        if tenant is not None:
            query = query.where(table.c.tenant == tenant)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"{kind} {row_id!r} not found")
        return row

    @staticmethod
    def _held(job_id: str, owner: str) -> tuple[Any, ...]:
        return (jobs.c.id == job_id, jobs.c.status == "running", jobs.c.lease_owner == owner)

    def _refusal(self, job_id: str, max_attempts: int, now: datetime) -> ClaimRefused:
        try:
            job = self.get_job(None, job_id)
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
        with self.engine.begin() as conn:
            cancelled = conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id, jobs.c.status.notin_(_FINAL))
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

    def _by_idempotency_key(self, tenant: str, key: str) -> JobRecord | None:
        query = jobs.select().where(jobs.c.tenant == tenant, jobs.c.idempotency_key == key)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return JobRecord(**row) if row else None

    @staticmethod
    def _same_request(existing: JobRecord, request_hash: str | None) -> JobRecord:
        if existing.request_hash != request_hash:
            raise Conflict("this Idempotency-Key was already used with a different request body")
        return existing

    def _page(
        self,
        table: sa.Table,
        tenant: str,
        limit: int,
        cursor: str | None,
        where: Sequence[Any] = (),
    ) -> tuple[list[dict[str, Any]], str | None]:
        query = table.select().where(table.c.tenant == tenant, *where)
        if cursor:
            created, row_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    table.c.created_at < created,
                    sa.and_(table.c.created_at == created, table.c.id < row_id),
                )
            )
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings().all()]
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_cursor(last["created_at"], last["id"])
