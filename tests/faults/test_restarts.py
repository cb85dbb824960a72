"""The broker losing everything, and the API killed in the middle of an upload: accepted jobs
still run, nothing half-written stays, and what was finished stays downloadable."""

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import ManagedProcess, wait_until
from tests.support.redis_server import RedisServer
from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration

BOUNDARY = "shears-fault-boundary"


def test_jobs_queued_when_redis_loses_everything_are_reenqueued_and_run(
    redis_server: RedisServer,
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[dict[str, str]], ApiServer],
    start_worker: Callable[..., ManagedProcess],
    onnx_model_file: Path,
) -> None:
    env = shears_env(
        broker_url=redis_server.url,
        reconcile_interval_s=0.5,
        reconcile_queued_after_s=2,
        reconcile_min_resend_s=1,
    )
    start_worker(env, queues=("shears.inspect",))  # nobody runs jobs yet
    api = start_api(env)
    with api.client() as http:
        model = upload_model(http, onnx_model_file)
        assert wait_for_model(http, model["id"])["status"] == "ready"
        jobs = [create_job(http, model["id"], fast_spec()) for _ in range(2)]

        redis_server.client().flushall()  # messages, bindings, everything
        assert redis_server.client().llen("shears.jobs") == 0
        start_worker(env, queues=("shears.jobs",))

        done = [wait_for_job(http, job["id"], timeout=90) for job in jobs]
    assert [(j["status"], j["attempt"]) for j in done] == [("succeeded", 1)] * 2, done
    assert "reconciler re-sent" in api.process.log()


def _stalled_upload(size_before_stall: int, resume: threading.Event) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for _ in range(size_before_stall // 65_536):
        yield b"\x07" * 65_536
    resume.wait(60)
    yield b"\x07" * 65_536
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _partial_uploads(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs" / "tmp").rglob("upload-*") if p.is_file()]


def test_api_killed_mid_upload_leaves_no_partial_file_and_keeps_jobs_and_artifacts(
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[dict[str, str]], ApiServer],
    start_worker: Callable[..., ManagedProcess],
    onnx_model_file: Path,
) -> None:
    env = shears_env()
    data_dir = Path(env["SHEARS_DATA_DIR"])
    start_worker(env)
    api = start_api(env)
    with api.client() as http:
        model = upload_model(http, onnx_model_file)
        job = wait_for_job(http, create_job(http, model["id"], fast_spec())["id"])
        assert job["status"] == "succeeded", job
        before = http.get(f"/v1/jobs/{job['id']}/artifacts/model").content

    resume = threading.Event()
    uploading = threading.Thread(target=_post_stalled, args=(api.url, resume), daemon=True)
    uploading.start()
    wait_until(lambda: _bytes_in(_partial_uploads(data_dir)) >= 1 << 20, 30, "upload streams")
    api.process.kill()  # SIGKILL: no cleanup handler runs
    resume.set()
    uploading.join(30)
    assert _partial_uploads(data_dir), "the kill should have left the partial file"

    restarted = start_api(env)
    assert _partial_uploads(data_dir) == []
    with restarted.client() as http:
        assert [j["id"] for j in http.get("/v1/jobs").json()["items"]] == [job["id"]]
        assert http.get(f"/v1/jobs/{job['id']}").json() == job
        after = http.get(f"/v1/jobs/{job['id']}/artifacts/model").content
        assert hashlib.sha256(after).hexdigest() == hashlib.sha256(before).hexdigest()
        assert len(http.get("/v1/models").json()["items"]) == 1


def _post_stalled(url: str, resume: threading.Event) -> None:
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    with contextlib.suppress(httpx.HTTPError):  # the server dies under it: the point
        httpx.post(
            f"{url}/v1/models",
            content=_stalled_upload(2 << 20, resume),
            headers=headers,
            timeout=60,
        )


def _bytes_in(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())
