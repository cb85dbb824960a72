"""Faults with real processes (RELIABILITY.md): each asserts the job's final state."""

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import (
    ManagedProcess,
    descendants,
    job_children,
    pid_alive,
    wait_until,
)
from tests.support.redis_server import RedisServer
from tests.support.shears import ApiServer, Stack

pytestmark = pytest.mark.integration


def test_job_whose_pool_process_is_killed_completes_on_a_second_attempt(
    redis_server: RedisServer,
    make_stack: Callable[..., Stack],
    onnx_model_file: Path,
) -> None:
    # A short lease: the redelivery waits for it to expire, then claims attempt 2.
    stack = make_stack(broker_url=redis_server.url, lease_s=3)
    (worker,) = stack.workers
    with stack.client() as http:
        model = upload_model(http, onnx_model_file)
        assert wait_for_model(http, model["id"])["status"] == "ready"
        # Seconds in the child (the latency stage fills its budget): time to kill it mid-job,
        # even warm (worker/warm.py), where the tiny fast_spec job takes about a second.
        job = create_job(http, model["id"], fast_spec(latency={"iterations": 5000}))
        wait_until(lambda: _engine_child_of(worker.pid) is not None, 60, "the job's child runs")
        child = _engine_child_of(worker.pid)
        assert child is not None
        engine_pid, pool_pid = child

        # What an OOM kill of the pool process looks like: no cleanup runs in it.
        os.kill(pool_pid, signal.SIGKILL)

        wait_until(lambda: not pid_alive(engine_pid), 10, "the orphaned engine child died")
        done = wait_for_job(http, job["id"], timeout=90)
    assert (done["status"], done["attempt"]) == ("succeeded", 2), done


def test_cancel_over_http_stops_the_running_job_and_its_child(
    redis_server: RedisServer,
    make_stack: Callable[..., Stack],
    onnx_model_file: Path,
) -> None:
    stack = make_stack(broker_url=redis_server.url)
    (worker,) = stack.workers
    with stack.client() as http:
        model = upload_model(http, onnx_model_file)
        assert wait_for_model(http, model["id"])["status"] == "ready"
        slow = fast_spec(latency={"batch_sizes": [1], "iterations": 10000, "warmup": 1})
        job = create_job(http, model["id"], slow)
        wait_until(lambda: _engine_child_of(worker.pid) is not None, 60, "the job's child runs")
        engine_pid, _ = _engine_child_of(worker.pid) or (0, 0)

        response = http.post(f"/v1/jobs/{job['id']}/cancel")

        assert response.status_code in (200, 202), response.text
        done = wait_for_job(http, job["id"], timeout=30)
    assert done["status"] == "cancelled", done
    wait_until(lambda: not pid_alive(engine_pid), 10, "the engine child was killed")


def test_job_queued_before_a_redis_restart_runs_after_it(
    redis_server: RedisServer,
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[dict[str, str]], ApiServer],
    start_worker: Callable[..., ManagedProcess],
    onnx_model_file: Path,
) -> None:
    env = shears_env(broker_url=redis_server.url)
    start_worker(env, queues=("shears.inspect",))  # uploads validate; nobody runs jobs yet
    api = start_api(env)
    with api.client() as http:
        model = upload_model(http, onnx_model_file)
        assert wait_for_model(http, model["id"])["status"] == "ready"
        job = create_job(http, model["id"], fast_spec())

        # The message lives only in Redis: its append-only file must bring it back.
        redis_server.restart()
        start_worker(env, queues=("shears.jobs",))

        done = wait_for_job(http, job["id"], timeout=90)
    assert (done["status"], done["attempt"]) == ("succeeded", 1), done


def _engine_child_of(worker_pid: int) -> tuple[int, int] | None:
    """(engine child pid, pool process pid) of the job running under `worker_pid`."""
    family = set(descendants(worker_pid))
    for child in job_children():  # not an idle warm child (worker/warm.py)
        if child.pid in family:
            return child.pid, child.ppid
    return None
