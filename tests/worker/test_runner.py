"""A job's delivery, end to end on real processes: claim, sandboxed engine child, final state.

Each test calls worker.runner.run_job directly, with a real SQLite store, a real blob store
and the real engine in a real child process.
"""

import hashlib
import os
import signal
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from api_schemas import Report
from tests.support.models import INPUT_FEATURES, TORCHSCRIPT_INPUT_SHAPES, fast_spec
from tests.support.processes import engine_children, pid_alive, wait_until
from tests.worker.factories import TENANT, add_job, add_model, add_ready_model
from worker.context import WorkerContext
from worker.runner import run_job

CHILD_START_TIMEOUT_S = 60.0


def _only_child() -> int:
    wait_until(lambda: len(engine_children(os.getpid())) == 1, CHILD_START_TIMEOUT_S, "child")
    return engine_children(os.getpid())[0].pid


def test_onnx_job_succeeds_with_model_and_report_in_blob_store(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec(sparsity=0.5))

    outcome = run_job(ctx, job.id)

    assert outcome.status == "succeeded", outcome
    done = ctx.store.get_job(None, job.id)
    assert (done.status, done.attempt, done.error_code) == ("succeeded", 1, None)
    artifacts = {a["name"]: a for a in done.artifacts}
    assert artifacts["model"]["format"] == "onnx"
    assert artifacts["report"]["format"] == "json"
    for artifact in artifacts.values():
        data = ctx.blobs.path(artifact["sha256"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
        assert len(data) == artifact["size_bytes"]
    assert Report.model_validate(done.report).sparsity.achieved == pytest.approx(0.5, abs=0.05)
    pruned = ort.InferenceSession(str(ctx.blobs.path(artifacts["model"]["sha256"])))
    (output,) = pruned.run(None, {"x": np.ones((2, INPUT_FEATURES), np.float32)})
    assert output.shape == (2, 4)


def test_progress_is_recorded_as_events_and_work_dir_is_removed(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec())

    run_job(ctx, job.id)

    events = ctx.store.list_events(job.id)
    assert events[-1].stage == "succeeded"
    assert len(events) >= 2  # at least one engine stage before the end
    assert list((ctx.settings.data_dir / "work").iterdir()) == []


def test_torchscript_job_succeeds_with_a_torchscript_model(
    ctx: WorkerContext, torchscript_model_file: Path
) -> None:
    spec = fast_spec(input_shapes=TORCHSCRIPT_INPUT_SHAPES)
    job = add_job(ctx, add_ready_model(ctx, torchscript_model_file), spec)

    assert run_job(ctx, job.id).status == "succeeded"

    model = next(a for a in ctx.store.get_job(None, job.id).artifacts if a["name"] == "model")
    assert model["format"] == "torchscript"


def test_second_delivery_of_running_job_changes_nothing(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec())
    first = ctx.store.claim(job.id, "first-delivery", lease_s=60, max_attempts=3)
    before = ctx.store.get_job(None, job.id)

    outcome = run_job(ctx, job.id)

    assert (outcome.status, outcome.detail) == ("refused", "leased")
    assert outcome.retry_after_s is not None and 1 <= outcome.retry_after_s <= 62
    assert ctx.store.get_job(None, job.id) == before
    assert before.lease_owner == first.owner  # type: ignore[union-attr]
    assert engine_children(os.getpid()) == []


def test_second_delivery_of_finished_job_changes_nothing(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec())
    run_job(ctx, job.id)
    finished = ctx.store.get_job(None, job.id)

    outcome = run_job(ctx, job.id)

    assert (outcome.status, outcome.detail) == ("refused", "finished")
    assert ctx.store.get_job(None, job.id) == finished


def test_cancel_while_running_kills_the_child_and_ends_cancelled(
    ctx: WorkerContext, onnx_model_file: Path, in_background
) -> None:
    job = add_job(
        ctx, add_ready_model(ctx, onnx_model_file), fast_spec(latency={"iterations": 5000})
    )
    running = in_background(run_job, ctx, job.id)
    child = _only_child()

    ctx.store.request_cancel(job.tenant, job.id)

    assert running.result(timeout=30).status == "cancelled"
    assert not pid_alive(child)
    done = ctx.store.get_job(None, job.id)
    assert (done.status, done.artifacts, done.error_code) == ("cancelled", [], None)


def test_child_over_the_time_limit_ends_failed_timeout(
    make_ctx, onnx_model_file: Path, in_background
) -> None:
    # Starting Python and importing the engine alone takes longer than half a second.
    ctx = make_ctx(job_time_limit_s=0.5)
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec())

    outcome = run_job(ctx, job.id)

    assert (outcome.status, outcome.detail) == ("failed", "timeout")
    done = ctx.store.get_job(None, job.id)
    assert done.error_code == "timeout"
    assert "0.5 s" in (done.error_message or "")
    assert engine_children(os.getpid()) == []


def test_child_killed_by_a_signal_at_the_attempt_cap_ends_failed_resource_exhausted(
    make_ctx, onnx_model_file: Path, in_background
) -> None:
    # Below the cap a killed child is re-run (tests/faults); the last attempt fails the job.
    ctx = make_ctx(max_attempts=1)
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec())
    running = in_background(run_job, ctx, job.id)

    os.kill(_only_child(), signal.SIGKILL)  # what the kernel's OOM killer does

    assert running.result(timeout=30).detail == "resource_exhausted"
    done = ctx.store.get_job(None, job.id)
    assert done.status == "failed"
    assert "killed by signal 9 (SIGKILL)" in (done.error_message or "")


def test_child_over_its_memory_limit_ends_failed_resource_exhausted(
    make_ctx, onnx_model_file: Path
) -> None:
    ctx = make_ctx(child_memory_bytes=512 * 1024**2)
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec())

    outcome = run_job(ctx, job.id)

    assert (outcome.status, outcome.detail) == ("failed", "resource_exhausted")
    assert "512 MiB" in (ctx.store.get_job(None, job.id).error_message or "")


def test_lost_lease_kills_the_child_and_writes_nothing(
    ctx: WorkerContext, onnx_model_file: Path, in_background
) -> None:
    job = add_job(
        ctx, add_ready_model(ctx, onnx_model_file), fast_spec(latency={"iterations": 5000})
    )
    running = in_background(run_job, ctx, job.id)
    child = _only_child()

    # Another party ended the job while this delivery ran (e.g. its lease was taken over).
    ctx.store.fail_unclaimed(job.id, "worker_lost", "taken over")

    assert running.result(timeout=30).status == "lease_lost"
    assert not pid_alive(child)
    done = ctx.store.get_job(None, job.id)
    assert (done.status, done.error_code, done.artifacts) == ("failed", "worker_lost", [])


def test_engine_error_code_becomes_the_jobs_error_code(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    spec = fast_spec(layers={"include": ["no_such_layer*"]})
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), spec)

    outcome = run_job(ctx, job.id)

    assert (outcome.status, outcome.detail) == ("failed", "layer_pattern_unmatched")
    assert "no_such_layer" in (ctx.store.get_job(None, job.id).error_message or "")


def test_job_on_a_model_that_failed_validation_ends_invalid_model(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    model = add_model(ctx, bogus)
    ctx.store.set_model_invalid(model.id, "not an ONNX or TorchScript file")
    job = add_job(ctx, model, fast_spec())

    outcome = run_job(ctx, job.id)

    assert (outcome.status, outcome.detail) == ("failed", "invalid_model")
    assert ctx.store.get_job(None, job.id).error_message == "not an ONNX or TorchScript file"


def test_the_report_page_is_titled_with_the_uploaded_name_not_the_work_copy(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec(sparsity=0.5))
    assert run_job(ctx, job.id).status == "succeeded"
    artifacts = {a["name"]: a for a in ctx.store.get_job(None, job.id).artifacts}
    page = ctx.blobs.path(artifacts["report_html"]["sha256"]).read_text()
    assert f"<title>Shears report: {onnx_model_file.name}</title>" in page


def test_the_job_row_takes_the_manifest_hash_of_what_actually_ran(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    model = add_ready_model(ctx, onnx_model_file)
    # As if the API had other versions installed than this worker: it computed another hash.
    job, _ = ctx.store.create_job(TENANT, model.id, fast_spec(), manifest_sha256="0" * 64)

    assert run_job(ctx, job.id).status == "succeeded"

    done = ctx.store.get_job(None, job.id)
    assert done.report is not None
    assert done.manifest_sha256 == done.report["manifest_sha256"] != "0" * 64
    assert done.report["manifest"]["model_sha256"] == model.sha256
