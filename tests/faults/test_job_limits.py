"""Jobs that exceed their limits end `failed` with a stable code, once, and the worker that
ran them lives on to run the next job."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.security import hostile
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.redis_server import RedisServer
from tests.support.shears import Stack

pytestmark = pytest.mark.integration

# Enough address space for the engine (torch and ONNX Runtime map more than 3 GiB of it),
# well below the 8 GiB that one sample of the bomb expands to.
CHILD_MEMORY = 6 * 1024**3
BOMB_ELEMENTS = 1 << 31


def test_memory_bomb_ends_resource_exhausted_and_the_worker_runs_the_next_job(
    redis_server: RedisServer,
    make_stack: Callable[..., Stack],
    onnx_model_file: Path,
    tmp_path: Path,
) -> None:
    stack = make_stack(broker_url=redis_server.url, child_memory_bytes=CHILD_MEMORY)
    bomb = tmp_path / "bomb.onnx"
    bomb.write_bytes(hostile.memory_bomb_onnx(elements_per_sample=BOMB_ELEMENTS))
    assert bomb.stat().st_size < 2048
    with stack.client() as http:
        model = upload_model(http, bomb)
        assert wait_for_model(http, model["id"])["status"] == "ready"  # small until it runs
        job = create_job(http, model["id"], fast_spec())
        done = wait_for_job(http, job["id"])
        assert (done["status"], done["error"]["code"]) == ("failed", "resource_exhausted"), done
        assert done["attempt"] == 1

        healthy = upload_model(http, onnx_model_file)
        after = wait_for_job(http, create_job(http, healthy["id"], fast_spec())["id"])
    assert after["status"] == "succeeded", after
    assert all(worker.running() for worker in stack.workers)


def test_job_past_its_time_limit_fails_timeout_once_with_no_redelivery(
    redis_server: RedisServer, make_stack: Callable[..., Stack], onnx_model_file: Path
) -> None:
    # 5000 latency iterations take far longer than a second, even in a warm child.
    stack = make_stack(broker_url=redis_server.url, job_time_limit_s=1, lease_s=2)
    (worker,) = stack.workers
    with stack.client() as http:
        model = upload_model(http, onnx_model_file)
        assert wait_for_model(http, model["id"])["status"] == "ready"
        job = create_job(http, model["id"], fast_spec(latency={"iterations": 5000}))
        done = wait_for_job(http, job["id"])
        assert (done["status"], done["error"]["code"], done["attempt"]) == (
            "failed",
            "timeout",
            1,
        ), done
        time.sleep(2 * 2)  # past two leases: nothing delivers it again
        assert http.get(f"/v1/jobs/{job['id']}").json() == done
    assert worker.log().count(f"job {job['id']}: attempt") == 1
