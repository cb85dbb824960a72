"""The parent's view of a running job, against a real store: progress is throttled within a
stage, every stage is kept, and cancel or a lost lease is noticed."""

from pathlib import Path

from tests.support.models import fast_spec
from tests.worker.factories import TENANT, add_job, add_model
from worker.context import WorkerContext
from worker.job_watch import CANCELLED, LEASE_LOST, JobWatch


def _watching(ctx: WorkerContext, model_file: Path) -> JobWatch:
    job = add_job(ctx, add_model(ctx, model_file), fast_spec())
    ctx.store.claim(job.id, "this-delivery", lease_s=60, max_attempts=3)
    return JobWatch(ctx.store, job.id, "this-delivery", lease_s=60)


def test_progress_within_a_stage_is_throttled_but_every_stage_is_recorded(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    watch = _watching(ctx, onnx_model_file)

    for step in range(200):
        assert watch.on_progress({"stage": "prune", "fraction": step / 200, "data": None})
    assert watch.on_progress({"stage": "latency", "fraction": 0.5, "data": {"message": "b=1"}})
    assert watch.flush()

    events = ctx.store.list_events(watch.job_id)
    assert [e.stage for e in events] == ["prune", "latency"]
    assert events[-1].message == "b=1"


def test_cancel_requested_through_the_api_is_noticed(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    watch = _watching(ctx, onnx_model_file)
    assert watch.check() is None

    ctx.store.request_cancel(TENANT, watch.job_id)

    assert watch.check() == CANCELLED


def test_job_taken_away_from_this_delivery_is_a_lost_lease(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    watch = _watching(ctx, onnx_model_file)

    ctx.store.fail_unclaimed(watch.job_id, "worker_lost", "taken over")

    assert watch.check() == LEASE_LOST
    assert not watch.on_progress({"stage": "save", "fraction": 0.4, "data": None})
