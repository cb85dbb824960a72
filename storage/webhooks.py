"""The webhook outbox: a job's callback target, and the deliveries owed when it ends.

`save_callback` and `owe_delivery` take the caller's connection: the job store calls them
inside the transactions that create a job and write its final status, so a final status is
never committed without the delivery it owes. `WebhookStore` is the dispatcher's side: it
claims due deliveries under a lease (several API replicas never send one twice at once) and
records each attempt.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.database import Database, job_callbacks, utcnow, webhook_deliveries
from storage.ids import new_id

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
EVENT_TYPES = {"succeeded": "job.succeeded", "failed": "job.failed", "cancelled": "job.cancelled"}


@dataclass(frozen=True)
class CallbackTarget:
    url: str
    secret: str


@dataclass(frozen=True)
class CallbackRecord:
    """A job's callback as its owner may see it: the URL and, once owed, its delivery."""

    job_id: str
    url: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryRecord:
    """One claimed delivery; `id` is the `webhook-id`, the same on every attempt."""

    id: str
    job_id: str
    url: str
    secret: str
    event_type: str
    event_at: datetime
    body: str | None
    attempts: int
    owner: str


def save_callback(conn: Connection, job_id: str, target: CallbackTarget) -> None:
    row = {"job_id": job_id, "url": target.url, "secret": target.secret}
    conn.execute(job_callbacks.insert(), [row])


def drop_callback(conn: Connection, job_id: str) -> None:
    conn.execute(job_callbacks.delete().where(job_callbacks.c.job_id == job_id))


def owe_delivery(conn: Connection, job_id: str, status: str, at: datetime) -> None:
    """Queue the webhook of a job that just ended with `status`, if it has a callback."""
    values = sa.select(
        sa.literal(new_id("msg")).label("id"),
        job_callbacks.c.job_id,
        sa.literal(EVENT_TYPES[status]).label("event_type"),
        sa.literal(at, webhook_deliveries.c.event_at.type).label("event_at"),
        sa.literal(PENDING).label("state"),
        sa.literal(0).label("attempts"),
        sa.literal(at, webhook_deliveries.c.next_attempt_at.type).label("next_attempt_at"),
        sa.literal(at, webhook_deliveries.c.created_at.type).label("created_at"),
    ).where(job_callbacks.c.job_id == job_id)
    columns = [
        "id", "job_id", "event_type", "event_at", "state", "attempts", "next_attempt_at",
        "created_at",
    ]  # fmt: skip
    conn.execute(webhook_deliveries.insert().from_select(columns, values))


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine

    def callbacks_for(self, job_ids: list[str]) -> dict[str, CallbackRecord]:
        """The callbacks of these jobs (jobs without one are absent)."""
        if not job_ids:
            return {}
        d = webhook_deliveries
        query = (
            sa.select(
                job_callbacks.c.job_id,
                job_callbacks.c.url,
                d.c.state,
                d.c.attempts,
                d.c.last_error,
                d.c.next_attempt_at,
                d.c.delivered_at,
            )
            .select_from(job_callbacks.outerjoin(d, d.c.job_id == job_callbacks.c.job_id))
            .where(job_callbacks.c.job_id.in_(job_ids))
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return {row["job_id"]: _callback(row) for row in rows}

    def claim_due(
        self, owner: str, lease_s: float, now: datetime | None = None
    ) -> DeliveryRecord | None:
        """Lease the delivery due the longest, or None. One guarded UPDATE decides, so two
        dispatchers racing for the same row cannot both win."""
        now = now or utcnow()
        d = webhook_deliveries
        claimable = sa.and_(
            d.c.state == PENDING,
            d.c.next_attempt_at <= now,
            sa.or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at < now),
        )
        # Read first: most polls find nothing due, and those need not queue for the write
        # lock behind createJob's inserts (storage/writes.py).
        with self.db.engine.connect() as conn:
            candidates = list(
                conn.execute(
                    sa.select(d.c.id).where(claimable).order_by(d.c.next_attempt_at).limit(5)
                ).scalars()
            )
        if not candidates:
            return None
        with self.db.begin() as conn:
            for delivery_id in candidates:
                won = conn.execute(
                    d.update()
                    .where(d.c.id == delivery_id, claimable)
                    .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
                ).rowcount
                if won:
                    return self._claimed(conn, delivery_id, owner)
        return None

    def set_body(self, delivery: DeliveryRecord, body: str) -> bool:
        """Freeze the body on the first attempt: every retry sends the same bytes."""
        return self._write(delivery, body=body)

    def delivered(self, delivery: DeliveryRecord) -> bool:
        now = utcnow()
        return self._write(
            delivery,
            state=DELIVERED,
            attempts=delivery.attempts + 1,
            last_error=None,
            delivered_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )

    def attempt_failed(
        self, delivery: DeliveryRecord, error: str, retry_at: datetime | None
    ) -> bool:
        """Record a failed attempt; `retry_at` None means give up (state `failed`)."""
        values: dict[str, Any] = {
            "attempts": delivery.attempts + 1,
            "last_error": error[:2000],
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if retry_at is None:
            values["state"] = FAILED
        else:
            values["next_attempt_at"] = retry_at
        return self._write(delivery, **values)

    def _write(self, delivery: DeliveryRecord, **values: Any) -> bool:
        """Only while this dispatcher still holds the lease."""
        d = webhook_deliveries
        with self.db.begin() as conn:
            held = conn.execute(
                d.update()
                .where(d.c.id == delivery.id, d.c.lease_owner == delivery.owner)
                .values(**values)
            ).rowcount
        return bool(held)

    def callback_secrets(self) -> list[tuple[str, str]]:
        """(job_id, stored secret) of every callback, for re-sealing with a new key."""
        query = sa.select(job_callbacks.c.job_id, job_callbacks.c.secret)
        with self.engine.connect() as conn:
            return [(row.job_id, row.secret) for row in conn.execute(query)]

    def replace_callback_secret(self, job_id: str, old: str, new: str) -> bool:
        """Only if it is still `old`: a concurrent rotation's write is not undone."""
        c = job_callbacks
        with self.db.begin() as conn:
            done = conn.execute(
                c.update().where(c.c.job_id == job_id, c.c.secret == old).values(secret=new)
            ).rowcount
        return bool(done)

    @staticmethod
    def _claimed(conn: Connection, delivery_id: str, owner: str) -> DeliveryRecord:
        d = webhook_deliveries
        row = (
            conn.execute(
                sa.select(d, job_callbacks.c.url, job_callbacks.c.secret)
                .select_from(d.join(job_callbacks, job_callbacks.c.job_id == d.c.job_id))
                .where(d.c.id == delivery_id)
            )
            .mappings()
            .one()
        )
        return DeliveryRecord(
            id=row["id"],
            job_id=row["job_id"],
            url=row["url"],
            secret=row["secret"],
            event_type=row["event_type"],
            event_at=row["event_at"],
            body=row["body"],
            attempts=row["attempts"],
            owner=owner,
        )


def fresh_callback(job_id: str, target: CallbackTarget) -> CallbackRecord:
    """What `callbacks_for` answers for a job just created: nothing owed yet."""
    return CallbackRecord(
        job_id=job_id,
        url=target.url,
        state=PENDING,
        attempts=0,
        last_error=None,
        next_attempt_at=None,
        delivered_at=None,
    )


def _callback(row: Any) -> CallbackRecord:
    owed = row["state"] is not None
    return CallbackRecord(
        job_id=row["job_id"],
        url=row["url"],
        state=row["state"] if owed else PENDING,
        attempts=row["attempts"] if owed else 0,
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"] if owed and row["state"] == PENDING else None,
        delivered_at=row["delivered_at"],
    )
