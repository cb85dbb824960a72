"""Every path that ends a job with a callback owes its webhook in the same transaction, and a
leased delivery goes to one dispatcher at a time; on SQLite and PostgreSQL."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import CallbackTarget, Claim, JobStore, connect
from tests.support.postgres import private_database

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TARGET = CallbackTarget(url="https://ci.example.com/hooks/shears", secret=SECRET)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        db = connect(f"sqlite:///{tmp_path / 'shears.db'}")
        yield JobStore(db)
        db.engine.dispose()
        return
    with private_database() as url:
        db = connect(url)
        yield JobStore(db)
        db.engine.dispose()


def make_job(store: JobStore, callback: CallbackTarget | None = TARGET) -> str:
    job, _ = store.create_job("t1", "mdl_a", {"sparsity": 0.5}, callback=callback)
    return job.id


def running(store: JobStore, callback: CallbackTarget | None = TARGET) -> Claim:
    claim = store.claim(make_job(store, callback), "w1", lease_s=30, max_attempts=3)
    assert isinstance(claim, Claim)
    return claim


def owed(store: JobStore, job_id: str) -> tuple[str, int] | None:
    callback = store.webhooks.callbacks_for([job_id]).get(job_id)
    if callback is None:
        return None
    delivery = store.webhooks.claim_due("probe", lease_s=0.001)
    assert delivery is not None and delivery.job_id == job_id, "the owed delivery is not due"
    return delivery.event_type, callback.attempts


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_worker_finishing_a_job_owes_its_webhook(store: JobStore, status: str) -> None:
    claim = running(store)
    assert store.webhooks.claim_due("d1", lease_s=30) is None  # nothing owed while it runs
    assert store.finish(claim.job.id, claim.owner, status)
    assert owed(store, claim.job.id) == (f"job.{status}", 0)


def test_cancelling_a_queued_job_owes_job_cancelled(store: JobStore) -> None:
    job_id = make_job(store)
    store.request_cancel("t1", job_id)
    assert owed(store, job_id) == ("job.cancelled", 0)


def test_a_job_failed_by_the_attempt_cap_owes_job_failed(store: JobStore) -> None:
    job_id = make_job(store)
    assert store.fail_unclaimed(job_id, "worker_lost", "lost three times")
    assert owed(store, job_id) == ("job.failed", 0)


def test_a_cancel_whose_worker_died_owes_job_cancelled(store: JobStore) -> None:
    claim = running(store)
    store.request_cancel("t1", claim.job.id)
    store.fail_or_cancel_abandoned(store.get_job(None, claim.job.id))
    assert owed(store, claim.job.id) == ("job.cancelled", 0)


def test_a_job_without_callback_owes_nothing(store: JobStore) -> None:
    claim = running(store, callback=None)
    assert store.finish(claim.job.id, claim.owner, "succeeded")
    assert store.webhooks.callbacks_for([claim.job.id]) == {}
    assert store.webhooks.claim_due("d1", lease_s=30) is None


def test_a_second_final_write_owes_no_second_webhook(store: JobStore) -> None:
    claim = running(store)
    assert store.finish(claim.job.id, claim.owner, "succeeded")
    assert not store.finish(claim.job.id, claim.owner, "failed")
    assert not store.fail_unclaimed(claim.job.id, "worker_lost", "late")
    assert store.webhooks.claim_due("d1", lease_s=30) is not None
    assert store.webhooks.claim_due("d2", lease_s=30) is None


def test_a_leased_delivery_goes_to_one_dispatcher_until_its_lease_expires(
    store: JobStore,
) -> None:
    claim = running(store)
    store.finish(claim.job.id, claim.owner, "succeeded")
    first = store.webhooks.claim_due("api-1", lease_s=0.2)
    assert first is not None and first.secret == SECRET and first.url == TARGET.url
    assert store.webhooks.claim_due("api-2", lease_s=30) is None
    time.sleep(0.3)
    second = store.webhooks.claim_due("api-2", lease_s=30)
    assert second is not None and second.id == first.id  # the same webhook-id
    assert not store.webhooks.delivered(first)  # the lease moved on: api-1 may not write
    assert store.webhooks.delivered(second)
    [callback] = store.webhooks.callbacks_for([claim.job.id]).values()
    assert (callback.state, callback.attempts) == ("delivered", 1)


def test_withdrawing_a_job_drops_its_callback(store: JobStore) -> None:
    job_id = make_job(store)
    assert store.withdraw_job(job_id)
    assert store.webhooks.callbacks_for([job_id]) == {}
