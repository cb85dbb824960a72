"""Tables and the connection. SQLite by default, PostgreSQL when the URL says so."""

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from storage.writes import WriteLock, write_transaction

metadata = sa.MetaData()


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out: SQLite forgets the zone otherwise."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(128), nullable=False, index=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("format", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("info", sa.JSON),
    sa.Column("error", sa.Text),
    # Added after the first release: `_add_missing_columns` gives older stores the column.
    sa.Column("error_code", sa.String(64)),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(128), nullable=False, index=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("samples", sa.BigInteger, nullable=False),
    sa.Column("arrays", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(128), nullable=False, index=True),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("stage", sa.String(64), nullable=False),
    sa.Column("fraction", sa.Float, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_expires_at", UtcDateTime),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("artifacts", sa.JSON, nullable=False),
    sa.Column("report", sa.JSON),
    sa.Column("idempotency_key", sa.String(256)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("enqueued_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    # Added after the first release (`_add_missing_columns`): what decides the artifact's
    # bytes, set at creation and replaced by the report's when a worker ran other versions.
    sa.Column("manifest_sha256", sa.String(64)),
    sa.UniqueConstraint("tenant", "idempotency_key", name="uq_jobs_idempotency"),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("stage", sa.String(64), nullable=False),
    sa.Column("fraction", sa.Float, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", sa.JSON),
)

# A job's webhook target, written with the job (createJob): the secret signs each delivery.
job_callbacks = sa.Table(
    "job_callbacks",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret", sa.String(256), nullable=False),
)

# The webhook outbox: a row is owed in the same transaction that writes a job's final status,
# so a crash of any process between the two cannot lose it; the API's dispatcher drains it.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False, unique=True),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("event_at", UtcDateTime, nullable=False),
    sa.Column("body", sa.Text),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False, index=True),
    sa.Column("last_error", sa.Text),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_expires_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime),
)


# The request that created a job (its X-Request-ID), so every attempt's log lines name it,
# redeliveries by the reconciler included.
job_requests = sa.Table(
    "job_requests",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False),
)

# Seconds per stage of a finished job's final attempt, and of its whole run, written when it
# finishes (storage/stage_times.py); /metrics sums them per histogram bucket in SQL. `bucket`
# is the index in storage/metrics.py's BUCKETS_S, so a scrape groups on an index instead of
# comparing each row with each bucket.
job_stage_times = sa.Table(
    "job_stage_times",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("stage", sa.String(32), primary_key=True),
    sa.Column("bucket", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Index("ix_job_stage_times_histogram", "stage", "bucket", "seconds"),
)

job_run_times = sa.Table(
    "job_run_times",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("bucket", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Index("ix_job_run_times_histogram", "status", "bucket", "seconds"),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Database:
    """One SQLAlchemy engine with the schema created."""

    engine: Engine
    url: str
    write_lock: WriteLock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "write_lock", WriteLock(self.engine))

    def begin(self) -> AbstractContextManager[Connection]:
        """A write transaction: every write of the stores goes through here (storage/writes.py)."""
        return write_transaction(self.engine, self.write_lock)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


# Sized for the load: each API process answers up to 40 requests at once (anyio's thread
# limit for sync routes), and a request waiting for a pooled connection waits for nothing
# useful. A SQLite connection is a file handle; PostgreSQL's are shared by all replicas and
# workers (its default max_connections is 100), so those stay fewer.
SQLITE_POOL = {"pool_size": 40, "max_overflow": 10}
POSTGRES_POOL = {"pool_size": 20, "max_overflow": 20, "pool_pre_ping": True}


def connect(url: str) -> Database:
    """Open the database at `url` and create the tables it lacks."""
    kwargs: dict[str, Any] = dict(POSTGRES_POOL)
    if url.startswith("sqlite"):
        # The API and the worker are separate processes writing the same file: wait for locks
        # instead of failing with "database is locked". A file does not go stale like a
        # server connection, so no ping (a query) before each use.
        kwargs = {**SQLITE_POOL, "connect_args": {"timeout": 30, "check_same_thread": False}}
        if url.rstrip("/") in ("sqlite:", "sqlite://") or ":memory:" in url:
            kwargs = {"connect_args": kwargs["connect_args"]}  # one in-memory db per connection
    engine = sa.create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    _create_tables(engine)
    return Database(engine=engine, url=url)


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """`create_all` checks, then creates: processes starting together (`shears serve`'s API
    and worker, several replicas) race, and the loser sees "table already exists". The
    next try finds the winner's tables."""
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            _add_missing_columns(engine)
            return
        except sa.exc.DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _add_missing_columns(engine: Engine) -> None:
    """A store created by an older release lacks the nullable columns added since; adding
    them is the whole migration (`create_all` leaves existing tables as they are). A race
    with another process adding the same column fails here and the retry finds it."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"table {table.name} lacks the non-null column {column.name}")
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
