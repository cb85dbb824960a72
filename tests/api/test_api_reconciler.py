"""The reconciler re-sends jobs whose message was lost, once per window, through the real
(embedded) broker: a message is a file in the broker's queue folder."""

import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from service.reconciler import Reconciler
from service.tasks import TaskSender
from shears_config import Settings
from storage import JobStore, connect
from storage.database import jobs, utcnow


def queued_messages(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "broker" / "queue").glob("*.shears.jobs.msg"))


def backdate(store: JobStore, job_id: str, hours: float) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(enqueued_at=utcnow() - timedelta(hours=hours))
        )


def test_stale_queued_and_lease_expired_jobs_are_resent_once_per_window(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = JobStore(connect(settings.resolved_database_url))
    reconciler = Reconciler(store, TaskSender(settings), settings)
    spec = {"sparsity": 0.5}
    stale, _ = store.create_job("default", "mdl_a", spec)
    backdate(store, stale.id, hours=2)
    lost, _ = store.create_job("default", "mdl_a", spec)
    store.claim(lost.id, "worker-that-died", lease_s=0.01, max_attempts=3)
    backdate(store, lost.id, hours=2)
    fresh, _ = store.create_job("default", "mdl_a", spec)
    alive, _ = store.create_job("default", "mdl_a", spec)
    store.claim(alive.id, "worker-alive", lease_s=600, max_attempts=3)
    time.sleep(0.05)

    assert sorted(reconciler.run_once()) == sorted([stale.id, lost.id])
    assert len(queued_messages(settings)) == 2
    assert reconciler.run_once() == []  # marked enqueued: not again until the next window
    assert len(queued_messages(settings)) == 2
    with store.engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(jobs.c.id, jobs.c.status)).all())
    assert statuses[fresh.id] == "queued" and statuses[alive.id] == "running"


def test_job_whose_worker_died_is_resent_as_soon_as_its_lease_expires(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = JobStore(connect(settings.resolved_database_url))
    reconciler = Reconciler(store, TaskSender(settings), settings)
    job, _ = store.create_job("default", "mdl_a", {"sparsity": 0.5})
    store.claim(job.id, "worker-that-died", lease_s=0.01, max_attempts=3)
    time.sleep(0.05)

    assert reconciler.run_once() == [job.id]
    assert reconciler.run_once() == []  # once per window after that
    assert len(queued_messages(settings)) == 1
