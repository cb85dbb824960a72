"""Jobs that end while the API is down still get their webhooks: the final status and the
delivery it owes are one transaction, and the restarted API's dispatcher sends what is owed.

The worker (embedded broker, SQLite) runs on while the API is killed; the jobs are only
picked up once it is dead, so nothing can be delivered before the restart.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
from webhook_http import FAST_WEBHOOKS, create_job_with_callback, wait_for_callback
from webhook_receiver import Receiver, new_secret, signature_verifies

from storage import JobStore, connect
from tests.security import hostile
from tests.support.api_client import upload_model, wait_for_model
from tests.support.processes import ManagedProcess, wait_until
from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration

# Enough address space for the engine, well below what one sample of the bomb expands to
# (tests/faults/test_job_limits.py): the bomb is how a job ends `failed` here.
CHILD_MEMORY = 6 * 1024**3


def test_jobs_that_end_while_the_api_is_dead_get_their_webhooks_after_restart(
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[dict[str, str]], ApiServer],
    start_worker: Callable[..., ManagedProcess],
    onnx_model_file: Path,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    env = shears_env(child_memory_bytes=CHILD_MEMORY, **FAST_WEBHOOKS)
    bomb = tmp_path / "bomb.onnx"
    bomb.write_bytes(hostile.memory_bomb_onnx(elements_per_sample=1 << 31))
    start_worker(env, queues=("shears.inspect",))  # nobody runs jobs yet
    api = start_api(env)
    secrets = {"/succeeded": new_secret(), "/failed": new_secret()}
    with api.client() as http:
        models = {
            "/succeeded": upload_model(http, onnx_model_file),
            "/failed": upload_model(http, bomb),
        }
        jobs = {}
        for path, model in models.items():
            assert wait_for_model(http, model["id"])["status"] == "ready"
            jobs[path] = create_job_with_callback(
                http, model["id"], receiver.url(path), secrets[path]
            )
    api.process.kill()  # SIGKILL: no shutdown handler runs

    start_worker(env, queues=("shears.jobs",))
    store = JobStore(connect(f"sqlite:///{Path(env['SHEARS_DATA_DIR']) / 'shears.db'}"))
    wait_until(
        lambda: all(store.get_job(None, j["id"]).finished for j in jobs.values()),
        180,
        "both jobs ended while the API is down",
    )
    assert receiver.at("/succeeded") == receiver.at("/failed") == []

    with start_api(env).client() as http:
        done = {path: wait_for_callback(http, job["id"]) for path, job in jobs.items()}
    for path, status in (("/succeeded", "succeeded"), ("/failed", "failed")):
        [post] = receiver.at(path)
        assert signature_verifies(secrets[path], post)
        event = post.json()
        assert (event["type"], event["data"]["status"]) == (f"job.{status}", status)
        assert event["data"]["id"] == jobs[path]["id"]
        assert done[path]["callback"]["state"] == "delivered"
        assert event["data"]["artifacts"] == done[path]["artifacts"]
        assert event["data"]["error"] == done[path]["error"]
    assert done["/succeeded"]["artifacts"] and done["/failed"]["error"]
    store.engine.dispose()
