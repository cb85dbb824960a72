"""A model that breaks Shears while being opened is Shears' fault, not the file's: the upload
answers 500 with the request id that names the log lines, the model is kept as `failed`, and
a retry once the fault is gone makes it `ready` and prunable. A file that is not a model is
still `invalid` with a code that says so."""

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest

from tests.support.api_client import create_job, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import ManagedProcess
from tests.support.redis_server import RedisServer
from tests.support.shears import Stack

pytestmark = pytest.mark.integration

# Loaded by every Python process started with this folder on PYTHONPATH (the worker and the
# sandboxed child it starts, which keeps PYTHONPATH): the engine's inspection raises, as a
# bug in our code would. No production code knows about it.
FAULT = "injected fault: the engine broke while opening the model"
SITECUSTOMIZE = f"""
import pruning


def _broken(*args, **kwargs):
    raise RuntimeError({FAULT!r})


pruning.inspect_model = _broken
"""


def with_fault(env: Mapping[str, str], folder: Path) -> dict[str, str]:
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    paths = [str(folder), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def upload(http: httpx.Client, path: Path) -> httpx.Response:
    with path.open("rb") as f:
        return http.post("/v1/models", files={"file": (path.name, f)})


def test_an_inspection_that_breaks_in_shears_keeps_the_model_and_a_retry_makes_it_ready(
    redis_server: RedisServer,
    make_stack: Callable[..., Stack],
    start_worker: Callable[..., ManagedProcess],
    onnx_model_file: Path,
    tmp_path: Path,
) -> None:
    stack = make_stack(broker_url=redis_server.url, workers=0)
    broken = start_worker(with_fault(stack.env, tmp_path / "fault"))
    with stack.client() as http:
        response = upload(http, onnx_model_file)
        assert response.status_code == 500, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "internal_error"
        assert "not in the file" in problem["detail"]
        request_id, model_id = problem["request_id"], problem["model_id"]
        assert request_id == response.headers["X-Request-ID"]

        model = http.get(f"/v1/models/{model_id}").json()
        assert (model["status"], model["error_code"]) == ("failed", "internal_error")
        refused = http.post("/v1/jobs", json={"model_id": model_id, "spec": fast_spec()})
        assert (refused.status_code, refused.json()["code"]) == (409, "model_failed")
        # The worker's log has what went wrong, under the id the client was given.
        fault_lines = [line for line in broken.log().splitlines() if FAULT in line]
        assert any(request_id in line for line in fault_lines), broken.log()[-3000:]

        broken.stop()
        start_worker(stack.env)
        retried = http.post(f"/v1/models/{model_id}/inspect")
        assert retried.status_code in (200, 202), retried.text
        model = wait_for_model(http, model_id)
        assert (model["status"], model["error"], model["error_code"]) == ("ready", None, None)
        job = wait_for_job(http, create_job(http, model_id, fast_spec())["id"])
    assert job["status"] == "succeeded", job


def test_a_file_that_is_no_model_is_invalid_with_a_code_and_leaves_nothing_behind(
    stack: Stack, tmp_path: Path
) -> None:
    junk = tmp_path / "notes.onnx"
    junk.write_bytes(b"these are meeting notes, not a model\n" * 20)
    with stack.client() as http:
        response = upload(http, junk)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_model"
        assert http.get("/v1/models").json()["items"] == []


def test_retrying_a_ready_model_changes_nothing(stack: Stack, onnx_model_file: Path) -> None:
    with stack.client() as http:
        model = upload(http, onnx_model_file).json()
        assert wait_for_model(http, model["id"])["status"] == "ready"
        again = http.post(f"/v1/models/{model['id']}/inspect")
        assert again.status_code == 200, again.text
        assert again.json() == wait_for_model(http, model["id"])
        missing = http.post("/v1/models/mdl_0000000000000000/inspect")
        assert missing.status_code == 404
