"""Stage and job durations recorded when a job finishes, and the closed set of error codes."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pruning.errors import ERROR_CODES as ENGINE_CODES
from storage import Claim, JobStore, connect
from storage.metrics import BUCKETS_S, JOB_ERROR_CODES, bucket_of, job_metrics
from storage.stage_times import stage_seconds
from worker import protocol

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_each_stage_lasts_until_the_next_one_starts_and_queue_wait_counts() -> None:
    events = [("load", at(3)), ("load", at(4)), ("prune", at(5)), ("succeeded", at(9))]

    seconds = stage_seconds(T0, at(2), True, events, finished_at=at(9))

    assert seconds == {"queued": 2.0, "starting": 1.0, "load": 2.0, "prune": 4.0}


def test_a_stage_entered_twice_adds_up_and_odd_names_count_as_other() -> None:
    events = [("prune", at(1)), ("retrain", at(2)), ("prune", at(4)), ("Évil\nname", at(5))]

    seconds = stage_seconds(T0, at(1), False, events, finished_at=at(6))

    assert seconds == {"queued": 1.0, "prune": 2.0, "retrain": 2.0, "other": 1.0}


def test_a_job_never_claimed_has_no_stage_times() -> None:
    assert stage_seconds(T0, None, False, [], finished_at=at(1)) == {}


def test_a_later_attempt_that_recorded_no_event_counts_only_its_queue_wait() -> None:
    # E.g. a job failed as worker_lost at the attempt cap before its engine said anything.
    assert stage_seconds(T0, at(2), False, [], finished_at=at(5)) == {"queued": 2.0}


def test_buckets_are_upper_bounds() -> None:
    assert bucket_of(0.0) == 0
    assert bucket_of(BUCKETS_S[0]) == 0
    assert bucket_of(BUCKETS_S[0] + 1e-9) == 1
    assert bucket_of(1e9) == len(BUCKETS_S)


def test_finishing_a_job_records_its_stages_and_duration_for_the_histograms(
    tmp_path: Path,
) -> None:
    store = JobStore(connect(f"sqlite:///{tmp_path / 'shears.db'}"))
    ok = _run(store, "succeeded", None)
    _run(store, "failed", "data_mismatch")
    _run(store, "failed", "made up by a child")

    metrics = job_metrics(store.db)

    assert metrics.by_status == {"succeeded": 1, "failed": 2}
    assert metrics.failed_by_code == {"data_mismatch": 1, "other": 1}
    assert {s: h.count for s, h in metrics.run_seconds.items()} == {"succeeded": 1, "failed": 2}
    assert metrics.stage_seconds["load"].count == 3
    assert metrics.stage_seconds["queued"].count == 3
    assert ok not in str(metrics)


def _run(store: JobStore, status: str, code: str | None) -> str:
    job, _ = store.create_job("acme", "mdl_1", {"sparsity": 0.5})
    claim = store.claim(job.id, "owner", lease_s=60, max_attempts=3)
    assert isinstance(claim, Claim)
    store.add_event(job.id, "owner", "load", 0.0, "load")
    store.add_event(job.id, "owner", "prune", 0.5, "prune")
    assert store.finish(job.id, "owner", status, error_code=code, error_message=code)
    return job.id


def test_error_codes_are_one_closed_set_across_engine_worker_and_metrics() -> None:
    assert set(ENGINE_CODES) <= protocol.ERROR_CODES
    assert protocol.ERROR_CODES | {"worker_lost"} == JOB_ERROR_CODES


@pytest.mark.parametrize("code", ["made_up", "x" * 500, "internal_error\nfake"])
def test_a_child_cannot_invent_an_error_code(tmp_path: Path, code: str) -> None:
    protocol.write_json(tmp_path / protocol.ERROR_FILE, {"code": code, "message": "boom"})

    error = protocol.read_error(tmp_path)

    assert error is not None and error.code == protocol.INTERNAL_ERROR
    assert "boom" in error.message
