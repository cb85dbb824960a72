"""Workers and their children killed with SIGKILL (what the kernel's OOM killer or a host
failure does), with real Redis, real workers and the real API's reconciler: an accepted job
is re-run and succeeds exactly once, or stops at the attempt cap; nothing blocks the queue.

The pool-process kill is in tests/integration/test_worker_faults.py.
"""

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.tasks import TaskSender
from shears_config import Settings
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import (
    ManagedProcess,
    engine_children,
    pid_alive,
    process_cwd,
    wait_until,
)
from tests.support.redis_server import RedisServer
from tests.support.shears import Stack

pytestmark = pytest.mark.integration

# A dead worker's job is re-sent by the API's reconciler once its lease expires: keep both
# short so recovery takes seconds, not the production minute.
FAST_RECOVERY = {"lease_s": 2, "reconcile_interval_s": 0.5, "reconcile_min_resend_s": 1}
# A job that runs for seconds in its child (the latency stage fills its budget), so a test can
# kill it mid-job: a warm child (worker/warm.py) runs the tiny fast_spec job in about a second.
LONG_ENOUGH_TO_KILL = fast_spec(latency={"iterations": 5000})


def _child_running(job_id: str) -> Any:
    """The engine child of `job_id` (its work dir names the job; a warm child moved there), or
    None."""
    return next(
        (
            c
            for c in engine_children()
            if any(job_id in a for a in (*c.cmdline, process_cwd(c.pid)))
        ),
        None,
    )


def _ready_model(http: httpx.Client, path: Path) -> str:
    model = upload_model(http, path)
    assert wait_for_model(http, model["id"])["status"] == "ready"
    return str(model["id"])


def _assert_succeeded_once(http: httpx.Client, job: dict[str, Any], attempt: int) -> None:
    assert (job["status"], job["attempt"], job["error"]) == ("succeeded", attempt, None), job
    events = http.get(f"/v1/jobs/{job['id']}/events", params={"limit": 200}).json()["items"]
    assert [e["stage"] for e in events].count("succeeded") <= 1
    assert [a["name"] for a in job["artifacts"]].count("model") == 1
    assert http.get(f"/v1/jobs/{job['id']}/artifacts/model").status_code == 200


def test_whole_worker_killed_mid_job_is_rerun_elsewhere_and_succeeds_once(
    redis_server: RedisServer,
    make_stack: Callable[..., Stack],
    start_worker: Callable[..., ManagedProcess],
    onnx_model_file: Path,
) -> None:
    stack = make_stack(broker_url=redis_server.url, **FAST_RECOVERY)
    (doomed,) = stack.workers
    with stack.client() as http:
        job = create_job(http, _ready_model(http, onnx_model_file), LONG_ENOUGH_TO_KILL)
        wait_until(lambda: _child_running(job["id"]) is not None, 60, "the job's child runs")
        child = _child_running(job["id"])

        doomed.kill()  # SIGKILL to the worker's whole process group: no cleanup anywhere
        wait_until(lambda: not pid_alive(child.pid), 10, "the orphaned engine child died")
        rescuer = start_worker(stack.env)

        done = wait_for_job(http, job["id"], timeout=90)
        _assert_succeeded_once(http, done, attempt=2)
        # A late duplicate of the message (Redis redelivers unacked ones) changes nothing.
        TaskSender(Settings(broker_url=redis_server.url)).run_job(job["id"])
        refused = f"job {job['id']}: delivery refused (finished)"
        wait_until(lambda: refused in rescuer.log(), 30, "the duplicate was refused")
        assert http.get(f"/v1/jobs/{job['id']}").json() == done
        assert http.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409


def test_sandboxed_child_killed_mid_job_is_rerun_and_succeeds_once(
    redis_server: RedisServer, make_stack: Callable[..., Stack], onnx_model_file: Path
) -> None:
    stack = make_stack(broker_url=redis_server.url, **FAST_RECOVERY)
    (worker,) = stack.workers
    with stack.client() as http:
        job = create_job(http, _ready_model(http, onnx_model_file), LONG_ENOUGH_TO_KILL)
        wait_until(lambda: _child_running(job["id"]) is not None, 60, "the job's child runs")

        os.kill(_child_running(job["id"]).pid, signal.SIGKILL)

        done = wait_for_job(http, job["id"], timeout=90)
    _assert_succeeded_once_in_log(worker, job["id"])
    assert (done["status"], done["attempt"]) == ("succeeded", 2), done


def _assert_succeeded_once_in_log(worker: ManagedProcess, job_id: str) -> None:
    log = worker.log()
    assert log.count(f"job {job_id}: succeeded") == 1, log[-3000:]
    assert f"job {job_id}: attempt 1 lost its child" in log


@contextmanager
def oom_killer_for(job_id: str) -> Iterator[list[int]]:
    """Kill the worker pool process that runs `job_id` each time its child starts, as the
    kernel's OOM killer would for a job that needs more memory than the host has."""
    killed: list[int] = []
    stop = threading.Event()

    def hunt() -> None:
        while not stop.wait(0.05):
            child = _child_running(job_id)
            # An orphan (parent 1) is the child of a pool process killed a moment ago, about
            # to die of its parent-death signal: not a new attempt, and never kill init.
            if child is not None and child.ppid > 1 and child.ppid not in killed:
                killed.append(child.ppid)
                os.kill(child.ppid, signal.SIGKILL)

    hunter = threading.Thread(target=hunt, daemon=True)
    hunter.start()
    try:
        yield killed
    finally:
        stop.set()
        hunter.join()


def test_job_that_kills_its_worker_every_time_stops_at_the_cap_and_the_queue_moves_on(
    redis_server: RedisServer, make_stack: Callable[..., Stack], onnx_model_file: Path
) -> None:
    stack = make_stack(broker_url=redis_server.url, max_attempts=2, **FAST_RECOVERY)
    with stack.client() as http:
        model_id = _ready_model(http, onnx_model_file)
        poison = create_job(http, model_id, LONG_ENOUGH_TO_KILL)
        behind = create_job(http, model_id, fast_spec(sparsity=0.25))
        with oom_killer_for(poison["id"]) as killed:
            failed = wait_for_job(http, poison["id"], timeout=90)
            after = wait_for_job(http, behind["id"], timeout=90)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "worker_lost"), failed
    assert failed["attempt"] == 2 and len(killed) == 2
    assert (after["status"], after["attempt"]) == ("succeeded", 1), after
    assert all(worker.running() for worker in stack.workers)
