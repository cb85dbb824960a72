"""Many request threads writing at once: createJob's shared commits (storage/group_commit.py)
and the write lock that queues writers (storage/writes.py), on SQLite and PostgreSQL."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storage import Conflict, JobStore, connect
from storage.job_requests import JobRequests

SPEC = {"sparsity": 0.5}
THREADS = 40


def test_concurrent_creations_are_all_stored_with_their_request_ids(store: JobStore) -> None:
    model = store.create_model("t1", "m", "0" * 64, 10)

    def create(n: int) -> str:
        job, created = store.create_job("t1", model.id, SPEC, request_id=f"req-{n}")
        assert created
        return job.id

    with ThreadPoolExecutor(THREADS) as pool:
        ids = list(pool.map(create, range(200)))

    assert len(set(ids)) == 200
    requests = JobRequests(store.db)
    for n, job_id in enumerate(ids):
        assert store.get_job("t1", job_id).status == "queued"
        assert requests.request_id(job_id) == f"req-{n}"


def test_one_key_raced_by_many_threads_makes_one_job_and_each_caller_its_own_answer(
    store: JobStore,
) -> None:
    model = store.create_model("t1", "m", "0" * 64, 10)

    def create(n: int) -> tuple[str, bool] | str:
        # Half the racers send the same body, half another one under the same key.
        try:
            job, created = store.create_job("t1", model.id, SPEC, "key", f"hash-{n % 2}")
        except Conflict:
            return "conflict"
        return job.id, created

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(create, range(THREADS)))

    made = [a for a in answers if isinstance(a, tuple) and a[1]]
    assert len(made) == 1
    winner_id = made[0][0]
    same = [a for a in answers if isinstance(a, tuple)]
    assert {job_id for job_id, _ in same} == {winner_id}
    # Every racer with the other body is refused, every one with the same body gets the job.
    assert answers.count("conflict") == THREADS // 2
    assert len(same) == THREADS // 2
    assert len(store.list_jobs("t1", 100, None)[0]) == 1


@pytest.mark.parametrize("stores", [2])
def test_two_stores_on_one_file_like_two_processes_write_side_by_side(
    tmp_path: Path, stores: int
) -> None:
    url = f"sqlite:///{tmp_path / 'shears.db'}"
    dbs = [connect(url) for _ in range(stores)]
    try:
        handles = [JobStore(db) for db in dbs]
        model = handles[0].create_model("t1", "m", "0" * 64, 10)

        def create(n: int) -> str:
            job, _ = handles[n % stores].create_job("t1", model.id, SPEC)
            handles[(n + 1) % stores].mark_enqueued(job.id)
            return job.id

        with ThreadPoolExecutor(THREADS) as pool:
            ids = list(pool.map(create, range(120)))
        assert len({handles[1].get_job(None, i).id for i in ids}) == 120
    finally:
        for db in dbs:
            db.engine.dispose()
