"""A warm engine child (worker/warm.py): started before its job, used once, sandboxed as a
cold one. Real processes, as in test_runner.py; each test turns warm children on for itself."""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.models import fast_spec
from tests.support.processes import engine_children, job_children, pid_alive, wait_until
from tests.worker.factories import add_job, add_ready_model
from worker import warm
from worker.context import WorkerContext
from worker.runner import run_job
from worker.workdir import work_root

CHILD_START_TIMEOUT_S = 60.0
SECRET = "postgresql://shears:hunter2@db/shears"


@pytest.fixture
def spare_pid(ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The pid of this test process's warm child, started with a secret in our environment."""
    monkeypatch.setenv("SHEARS_DATABASE_URL", SECRET)
    warm.enable(work_root(ctx.settings.data_dir))
    try:
        (spare,) = engine_children(os.getpid())
        yield spare.pid
    finally:
        warm.disable()


def _running_job_child() -> int:
    wait_until(lambda: len(job_children(os.getpid())) == 1, CHILD_START_TIMEOUT_S, "job child")
    return job_children(os.getpid())[0].pid


def _limit(pid: int, name: str) -> str:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if name in x)
    return line.split()[-3]  # the soft limit's column


def test_job_runs_in_the_spare_started_before_it_and_the_spare_is_used_once(
    ctx: WorkerContext, onnx_model_file: Path, spare_pid: int, in_background
) -> None:
    job = add_job(
        ctx, add_ready_model(ctx, onnx_model_file), fast_spec(latency={"iterations": 300})
    )
    running = in_background(run_job, ctx, job.id)

    assert _running_job_child() == spare_pid
    assert running.result(timeout=120).status == "succeeded"
    assert not pid_alive(spare_pid)
    assert engine_children(os.getpid()) == []  # the next spare comes from the task (refill)


def test_spare_is_sandboxed_like_a_cold_child_before_and_after_it_gets_its_job(
    ctx: WorkerContext, onnx_model_file: Path, spare_pid: int, in_background
) -> None:
    assert os.getsid(spare_pid) == spare_pid  # its own session: a kill reaches its group
    assert SECRET.encode() not in Path(f"/proc/{spare_pid}/environ").read_bytes()
    job = add_job(
        ctx, add_ready_model(ctx, onnx_model_file), fast_spec(latency={"iterations": 5000})
    )
    running = in_background(run_job, ctx, job.id)
    child = _running_job_child()

    wait_until(
        lambda: _limit(child, "Max address space") == str(ctx.settings.child_memory_bytes),
        CHILD_START_TIMEOUT_S,
        "the job's memory limit",
    )
    assert _limit(child, "Max cpu time") != "unlimited"
    assert _limit(child, "Max core file size") == "0"
    assert f"job-{job.id}" in os.readlink(f"/proc/{child}/cwd")

    ctx.store.request_cancel(job.tenant, job.id)
    assert running.result(timeout=30).status == "cancelled"
    assert not pid_alive(child)


def test_warm_child_killed_mid_job_is_a_rerun_and_the_worker_goes_on(
    ctx: WorkerContext, onnx_model_file: Path, spare_pid: int, in_background
) -> None:
    job = add_job(
        ctx, add_ready_model(ctx, onnx_model_file), fast_spec(latency={"iterations": 5000})
    )
    running = in_background(run_job, ctx, job.id)

    os.kill(_running_job_child(), signal.SIGKILL)

    assert (running.result(timeout=30).status, running.result().detail) == (
        "rerun",
        "resource_exhausted",
    )
    assert run_job(ctx, job.id).status == "succeeded"  # attempt 2, on a cold child
    assert ctx.store.get_job(None, job.id).attempt == 2


def test_spare_that_died_while_waiting_is_replaced_by_a_cold_child(
    ctx: WorkerContext, onnx_model_file: Path, spare_pid: int
) -> None:
    os.kill(spare_pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(spare_pid), 10, "the spare to die")
    job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec())

    outcome = run_job(ctx, job.id)

    assert outcome.status == "succeeded", outcome
    assert ctx.store.get_job(None, job.id).attempt == 1


def test_warm_child_over_its_memory_limit_ends_failed_resource_exhausted(
    make_ctx, onnx_model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spare imported the engine with no address-space limit; the job's limit still holds.
    ctx = make_ctx(child_memory_bytes=512 * 1024**2)
    warm.enable(work_root(ctx.settings.data_dir))
    try:
        job = add_job(ctx, add_ready_model(ctx, onnx_model_file), fast_spec())
        outcome = run_job(ctx, job.id)
    finally:
        warm.disable()

    assert (outcome.status, outcome.detail) == ("failed", "resource_exhausted")
    assert "512 MiB" in (ctx.store.get_job(None, job.id).error_message or "")
