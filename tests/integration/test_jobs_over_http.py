"""Whole stacks over real HTTP: the API, real Celery workers, a private redis-server, the real
engine. Uploads, jobs, reports and artifacts as a client sees them (API.md)."""

import io
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch

from api_schemas import Report
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import (
    INPUT_FEATURES,
    OUTPUT_FEATURES,
    TORCHSCRIPT_INPUT_SHAPES,
    fast_spec,
)
from tests.support.redis_server import RedisServer
from tests.support.shears import ApiServer, Stack

pytestmark = pytest.mark.integration

JOB_TIMEOUT_S = 120.0


def _ready_model(http: httpx.Client, path: Path) -> dict[str, Any]:
    model = upload_model(http, path)
    model = wait_for_model(http, model["id"])
    assert model["status"] == "ready", model
    return model


def _spec_for(model: dict[str, Any]) -> dict[str, Any]:
    if model["format"] == "torchscript":
        return fast_spec(input_shapes=TORCHSCRIPT_INPUT_SHAPES)
    return fast_spec()


def _assert_succeeded_with_a_runnable_model(http: httpx.Client, job: dict[str, Any]) -> None:
    assert job["status"] == "succeeded", job
    assert {a["name"] for a in job["artifacts"]} >= {"model", "report"}
    report = http.get(f"/v1/jobs/{job['id']}/report")
    assert report.status_code == 200, report.text
    assert Report.model_validate(report.json()).sparsity.target == pytest.approx(0.5)
    download = http.get(f"/v1/jobs/{job['id']}/artifacts/model")
    assert download.status_code == 200, download.text
    fmt = next(a["format"] for a in job["artifacts"] if a["name"] == "model")
    assert _run_model(download.content, fmt).shape == (3, OUTPUT_FEATURES)


def _run_model(content: bytes, fmt: str) -> np.ndarray:
    batch = np.random.default_rng(0).standard_normal((3, INPUT_FEATURES)).astype(np.float32)
    if fmt == "onnx":
        session = ort.InferenceSession(content)
        return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0])
    assert fmt == "torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript
        module = torch.jit.load(io.BytesIO(content))
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(batch)).numpy())


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    start = [datetime.fromisoformat(j["started_at"]) for j in (a, b)]
    end = [datetime.fromisoformat(j["finished_at"]) for j in (a, b)]
    return start[0] < end[1] and start[1] < end[0]


def test_two_workers_complete_onnx_and_torchscript_jobs_concurrently(
    redis_server: RedisServer,
    make_stack: Callable[..., Stack],
    onnx_model_file: Path,
    torchscript_model_file: Path,
) -> None:
    stack = make_stack(broker_url=redis_server.url, workers=2)
    with stack.client() as http:
        models = [_ready_model(http, onnx_model_file), _ready_model(http, torchscript_model_file)]
        submitted = [create_job(http, m["id"], _spec_for(m)) for m in models for _ in range(2)]
        jobs = [wait_for_job(http, job["id"], timeout=JOB_TIMEOUT_S) for job in submitted]
        for job in jobs:
            _assert_succeeded_with_a_runnable_model(http, job)

    assert all("claimed by" in worker.log() for worker in stack.workers), "both workers ran jobs"
    assert any(_overlap(a, b) for a in jobs for b in jobs if a is not b), "jobs ran side by side"


def test_stack_on_postgresql_completes_a_job(
    redis_server: RedisServer,
    postgres_url: str,
    make_stack: Callable[..., Stack],
    onnx_model_file: Path,
) -> None:
    stack = make_stack(broker_url=redis_server.url, database_url=postgres_url)
    with stack.client() as http:
        model = _ready_model(http, onnx_model_file)
        job = wait_for_job(http, create_job(http, model["id"], fast_spec())["id"])
        _assert_succeeded_with_a_runnable_model(http, job)
        events = http.get(f"/v1/jobs/{job['id']}/events")
        assert events.status_code == 200, events.text


def test_serve_completes_a_job_with_the_embedded_broker_and_no_redis(
    shears_env: Callable[..., dict[str, str]],
    start_serve: Callable[[dict[str, str]], ApiServer],
    torchscript_model_file: Path,
) -> None:
    env = shears_env()  # no SHEARS_BROKER_URL: kombu's filesystem transport under data_dir
    server = start_serve(env)
    with server.client() as http:
        model = _ready_model(http, torchscript_model_file)
        job = wait_for_job(http, create_job(http, model["id"], _spec_for(model))["id"])
        _assert_succeeded_with_a_runnable_model(http, job)
    assert (Path(env["SHEARS_DATA_DIR"]) / "broker").is_dir()
