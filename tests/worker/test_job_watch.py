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


def test_events_marked_keep_are_recorded_while_the_rest_of_their_stage_is_throttled(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    watch = _watching(ctx, onnx_model_file)
    # Within an hour-long interval every unmarked event after the stage's first is throttled.
    watch.min_event_interval_s = 3600.0

    for epoch in range(1, 6):
        for batch in range(20):
            fraction = 0.4 + 0.01 * epoch + 0.0001 * batch
            assert watch.on_progress({"stage": "retrain", "fraction": fraction, "data": None})
        epoch_end = {"epoch": epoch, "epochs": 5, "loss": 1.0 / epoch, "keep": True}
        assert watch.on_progress({"stage": "retrain", "fraction": 0.5, "data": epoch_end})
    assert watch.flush()

    events = ctx.store.list_events(watch.job_id)
    assert [(e.data or {}).get("epoch") for e in events] == [None, 1, 2, 3, 4, 5]
    assert [e.stage for e in events] == ["retrain"] * 6
    assert ctx.store.get_job(None, watch.job_id).stage == "retrain"


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
