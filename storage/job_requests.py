"""The request that created each job, so the worker's log lines name it on every attempt."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.database import Database, job_requests


def record_request(conn: Connection, job_id: str, request_id: str) -> None:
    """In the caller's transaction: createJob writes it with the job (storage/jobs.py)."""
    conn.execute(job_requests.insert(), [{"job_id": job_id, "request_id": request_id}])


class JobRequests:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine

    def record(self, job_id: str, request_id: str) -> None:
        with self.db.begin() as conn:
            record_request(conn, job_id, request_id)

    def request_id(self, job_id: str) -> str | None:
        query = sa.select(job_requests.c.request_id).where(job_requests.c.job_id == job_id)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return str(found) if found is not None else None
