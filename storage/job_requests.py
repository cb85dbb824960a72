"""The request that created each job, so the worker's log lines name it on every attempt."""

import sqlalchemy as sa

from storage.database import Database, job_requests


class JobRequests:
    def __init__(self, db: Database) -> None:
        self.engine = db.engine

    def record(self, job_id: str, request_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(job_requests.insert().values(job_id=job_id, request_id=request_id))

    def request_id(self, job_id: str) -> str | None:
        query = sa.select(job_requests.c.request_id).where(job_requests.c.job_id == job_id)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return str(found) if found is not None else None
