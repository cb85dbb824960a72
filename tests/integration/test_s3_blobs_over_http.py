"""Blobs in an S3 bucket (SHEARS_BLOB_URL): a worker that shares no disk with the API still
validates uploads, runs jobs and stores artifacts the API serves. Only the broker (Redis),
the job store (one SQLite file outside both data dirs) and the bucket (moto's S3 server) are
shared, as for a worker on another host."""

import hashlib
import io
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import INPUT_FEATURES, OUTPUT_FEATURES, fast_spec
from tests.support.processes import ManagedProcess
from tests.support.redis_server import RedisServer
from tests.support.s3_server import CREDENTIALS, S3Server
from tests.support.shears import ApiServer, wait_until_worker_ready

pytestmark = pytest.mark.integration


def local_blob_files(data_dir: Path) -> list[Path]:
    """Blob bytes kept on a data dir's disk: stored blobs, or partial uploads left behind."""
    blobs = data_dir / "blobs"
    stored = [p for p in (blobs / "sha256").rglob("*") if p.is_file()]
    staged = [p for p in (blobs / "tmp").rglob("upload-*") if p.is_file()]
    return stored + staged


def test_a_worker_without_the_apis_disk_runs_a_job_through_the_bucket(
    redis_server: RedisServer,
    s3_server: S3Server,
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[Mapping[str, str]], ApiServer],
    start_worker: Callable[..., ManagedProcess],
    onnx_model_file: Path,
    tmp_path: Path,
) -> None:
    bucket = s3_server.new_bucket()
    shared = {
        "broker_url": redis_server.url,
        "database_url": f"sqlite:///{tmp_path / 'job-store.db'}",
        **s3_server.settings(bucket, prefix="shears"),
    }
    api_env = {**shears_env(**shared), **CREDENTIALS}
    worker_env = {**shears_env(**shared), **CREDENTIALS}
    api_dir, worker_dir = Path(api_env["SHEARS_DATA_DIR"]), Path(worker_env["SHEARS_DATA_DIR"])
    assert api_dir != worker_dir and not worker_dir.is_relative_to(api_dir)

    worker = start_worker(worker_env, wait=False)
    api = start_api(api_env)
    wait_until_worker_ready(worker)
    with api.client() as http:
        assert http.get("/readyz").json()["checks"]["blob_store"] == "ok"
        model = wait_for_model(http, upload_model(http, onnx_model_file)["id"])
        assert model["status"] == "ready", model  # the worker fetched it from the bucket
        buffer = io.BytesIO()
        np.savez(buffer, x=np.zeros((4, INPUT_FEATURES), np.float32))
        dataset = http.post("/v1/datasets", files={"file": ("data.npz", buffer.getvalue())})
        assert dataset.status_code == 201, dataset.text
        assert dataset.json()["samples"] == 4  # inspected from a copy of the bucket's object

        job = wait_for_job(http, create_job(http, model["id"], fast_spec())["id"])
        assert job["status"] == "succeeded", job
        artifact = next(a for a in job["artifacts"] if a["name"] == "model")
        # identity: gzip would drop the Content-Length the blob's size sets
        download = http.get(
            f"/v1/jobs/{job['id']}/artifacts/model", headers={"Accept-Encoding": "identity"}
        )

    assert download.status_code == 200, download.text
    assert download.headers["content-length"] == str(artifact["size_bytes"])
    assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"]
    session = ort.InferenceSession(download.content)
    batch = np.ones((2, INPUT_FEATURES), np.float32)
    assert session.run(None, {session.get_inputs()[0].name: batch})[0].shape == (2, OUTPUT_FEATURES)

    expected = {model["sha256"], dataset.json()["sha256"], *(a["sha256"] for a in job["artifacts"])}
    assert set(s3_server.keys(bucket)) == {f"shears/sha256/{digest}" for digest in expected}
    assert local_blob_files(api_dir) == [] and local_blob_files(worker_dir) == []
