"""Tables and the connection. SQLite by default, PostgreSQL when the URL says so."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Database:
    """One SQLAlchemy engine with the schema created."""

    engine: Engine
    url: str

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


def connect(url: str) -> Database:
    """Open the database at `url` and create the tables it lacks."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        # The API and the worker are separate processes writing the same file: wait for locks
        # instead of failing with "database is locked".
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
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
            return
        except sa.exc.DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
