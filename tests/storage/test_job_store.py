"""The job row is the truth: claims, leases, attempts and idempotency, on SQLite and PostgreSQL."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from storage import Claim, ClaimRefused, Conflict, JobStore, NotFound

SPEC = {"sparsity": 0.5}


def make_job(store: JobStore, tenant: str = "t1", **kwargs: object) -> str:
    model = store.create_model(tenant, "m", "0" * 64, 10)
    job, created = store.create_job(tenant, model.id, SPEC, **kwargs)  # type: ignore[arg-type]
    assert created
    return job.id


def test_claim_counts_the_attempt_and_grants_a_lease(store: JobStore) -> None:
    job_id = make_job(store)
    claim = store.claim(job_id, "w1", lease_s=30, max_attempts=3)
    assert isinstance(claim, Claim)
    assert claim.job.status == "running"
    assert claim.job.attempt == 1
    assert claim.job.started_at is not None


def test_second_delivery_of_a_running_job_is_refused(store: JobStore) -> None:
    job_id = make_job(store)
    assert isinstance(store.claim(job_id, "w1", 30, 3), Claim)
    refused = store.claim(job_id, "w2", 30, 3)
    assert refused == ClaimRefused("leased")
    assert store.get_job(None, job_id).attempt == 1


def test_only_one_of_many_racing_deliveries_wins(store: JobStore) -> None:
    job_id = make_job(store)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: store.claim(job_id, f"w{i}", 30, 3), range(8)))
    assert sum(isinstance(r, Claim) for r in results) == 1


def test_delivery_of_a_finished_job_is_refused(store: JobStore) -> None:
    job_id = make_job(store)
    store.claim(job_id, "w1", 30, 3)
    assert store.finish(job_id, "w1", "succeeded", artifacts=[], report={"x": 1})
    assert store.claim(job_id, "w2", 30, 3) == ClaimRefused("finished")


def test_expired_lease_lets_another_delivery_take_over(store: JobStore) -> None:
    job_id = make_job(store)
    store.claim(job_id, "w1", lease_s=0.05, max_attempts=3)
    time.sleep(0.1)
    claim = store.claim(job_id, "w2", 30, 3)
    assert isinstance(claim, Claim) and claim.job.attempt == 2
    # The first owner lost its lease: none of its writes land.
    assert not store.add_event(job_id, "w1", "prune", 0.5, "late")
    assert not store.finish(job_id, "w1", "succeeded")
    assert store.get_job(None, job_id).lease_owner == "w2"


def test_job_past_the_attempt_cap_fails_as_worker_lost(store: JobStore) -> None:
    job_id = make_job(store)
    for owner in ("w1", "w2"):
        assert isinstance(store.claim(job_id, owner, lease_s=0.01, max_attempts=2), Claim)
        time.sleep(0.05)
    assert store.claim(job_id, "w3", 30, 2) == ClaimRefused("attempts_exhausted")
    job = store.get_job(None, job_id)
    assert job.status == "failed" and job.error_code == "worker_lost"


def test_events_are_ordered_and_record_the_attempt(store: JobStore) -> None:
    job_id = make_job(store)
    store.claim(job_id, "w1", 30, 3)
    for i, stage in enumerate(["load", "prune", "save"]):
        assert store.add_event(job_id, "w1", stage, i / 3, f"{stage} started")
    events = store.list_events(job_id)
    assert [e.stage for e in events] == ["load", "prune", "save"]
    assert all(e.attempt == 1 for e in events)
    assert [e.stage for e in store.list_events(job_id, after=events[0].seq)] == ["prune", "save"]


def test_cancel_of_a_queued_job_ends_it_and_a_delivery_then_refuses(store: JobStore) -> None:
    job_id = make_job(store)
    assert store.request_cancel("t1", job_id).status == "cancelled"
    assert store.claim(job_id, "w1", 30, 3) == ClaimRefused("finished")
    assert store.request_cancel("t1", job_id).status == "cancelled"


def test_cancel_of_a_running_job_flags_it_for_its_worker(store: JobStore) -> None:
    job_id = make_job(store)
    store.claim(job_id, "w1", 30, 3)
    job = store.request_cancel("t1", job_id)
    assert job.status == "running" and job.cancel_requested
    renewed = store.renew(job_id, "w1", 30)
    assert renewed is not None and renewed.cancel_requested


def test_cancel_after_success_is_a_conflict(store: JobStore) -> None:
    job_id = make_job(store)
    store.claim(job_id, "w1", 30, 3)
    store.finish(job_id, "w1", "succeeded")
    with pytest.raises(Conflict):
        store.request_cancel("t1", job_id)


def test_same_idempotency_key_and_body_return_the_same_job(store: JobStore) -> None:
    model = store.create_model("t1", "m", "0" * 64, 10)
    first, created = store.create_job("t1", model.id, SPEC, "key-1", "hash-a")
    again, created_again = store.create_job("t1", model.id, SPEC, "key-1", "hash-a")
    assert created and not created_again and again.id == first.id
    with pytest.raises(Conflict):
        store.create_job("t1", model.id, SPEC, "key-1", "hash-b")


def test_idempotency_keys_are_per_tenant(store: JobStore) -> None:
    m1 = store.create_model("t1", "m", "0" * 64, 10)
    m2 = store.create_model("t2", "m", "0" * 64, 10)
    a, _ = store.create_job("t1", m1.id, SPEC, "same", "h")
    b, created = store.create_job("t2", m2.id, SPEC, "same", "h")
    assert created and a.id != b.id


def test_another_tenants_resources_are_not_found(store: JobStore) -> None:
    job_id = make_job(store, tenant="t1")
    with pytest.raises(NotFound):
        store.get_job("t2", job_id)
    with pytest.raises(NotFound):
        store.request_cancel("t2", job_id)


def test_pages_cover_every_job_once_in_newest_first_order(store: JobStore) -> None:
    ids = [make_job(store) for _ in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = store.list_jobs("t1", limit=3, cursor=cursor)
        seen += [j.id for j in page]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))


def test_model_with_active_jobs_cannot_be_deleted(store: JobStore) -> None:
    job_id = make_job(store)
    model_id = store.get_job(None, job_id).model_id
    with pytest.raises(Conflict):
        store.delete_model("t1", model_id)


def test_an_identical_job_is_a_succeeded_one_of_the_same_tenant_and_manifest(
    store: JobStore,
) -> None:
    manifest = "a" * 64
    queued = make_job(store, manifest_sha256=manifest)
    other_tenant = make_job(store, tenant="t2", manifest_sha256=manifest)
    failed = make_job(store, manifest_sha256=manifest)
    assert store.identical_succeeded("t1", manifest) is None  # queued work is not a result
    for job_id, status in ((other_tenant, "succeeded"), (failed, "failed")):
        store.claim(job_id, "w1", 30, 3)
        store.finish(job_id, "w1", status)
    assert store.identical_succeeded("t1", manifest) is None
    store.claim(queued, "w1", 30, 3)
    store.finish(queued, "w1", "succeeded")
    found = store.identical_succeeded("t1", manifest)
    assert found is not None and found.id == queued


def test_finishing_records_the_manifest_that_ran_in_place_of_the_computed_one(
    store: JobStore,
) -> None:
    job_id = make_job(store, manifest_sha256="a" * 64)
    store.claim(job_id, "w1", 30, 3)
    assert store.finish(job_id, "w1", "succeeded", manifest_sha256="b" * 64)
    assert store.get_job(None, job_id).manifest_sha256 == "b" * 64
    failed = make_job(store, manifest_sha256="a" * 64)
    store.claim(failed, "w1", 30, 3)
    store.finish(failed, "w1", "failed", error_code="timeout")  # nothing ran to the end
    assert store.get_job(None, failed).manifest_sha256 == "a" * 64
