"""`shears serve`: the API and a real worker in one command, on the embedded broker: an
upload is validated, a job runs, its report and artifacts come back, and a stop stops both."""

import hashlib
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from api_http import assert_problem, create_job, upload_model

from tests.support.api_client import wait_for_job
from tests.support.models import fast_spec
from tests.support.processes import ProcessRegistry, free_port, python_argv
from tests.support.shears import STARTUP_TIMEOUT_S, ApiServer


def start_serve_on_all_interfaces(processes: ProcessRegistry, env: dict[str, str]) -> ApiServer:
    port = free_port()
    argv = python_argv("-m", "shears_cli", "serve", "--host", "0.0.0.0", "--port", str(port))
    api = ApiServer(process=processes.start("serve", argv, env), port=port)
    api.process.wait_for(api.healthy, timeout=STARTUP_TIMEOUT_S, what="healthy on /healthz")
    return api


def test_serve_binds_loopback_without_keys_runs_a_job_and_stops_its_worker(
    processes: ProcessRegistry,
    shears_env: Callable[..., dict[str, str]],
    model_files: dict[str, Path],
) -> None:
    api = start_serve_on_all_interfaces(processes, shears_env())
    log = api.process.log()
    assert "binding to 127.0.0.1 instead of 0.0.0.0" in log
    assert "embedded filesystem broker" in log and "one machine only" in log

    with api.client() as http:
        model = upload_model(http, model_files["onnx"], expect=201)
        job = create_job(http, model["id"], fast_spec())
        assert_problem(http.get(f"/v1/jobs/{job['id']}/report"), 409)
        done = wait_for_job(http, job["id"], timeout=90)
        assert done["status"] == "succeeded", done
        check_report_and_artifacts(http, done)

    worker_pid = int(re.search(r"worker pid (\d+)", log).group(1))  # type: ignore[union-attr]
    os.kill(api.process.pid, signal.SIGTERM)
    assert api.process.popen.wait(timeout=60) == 0
    assert not alive(worker_pid)


def check_report_and_artifacts(http: httpx.Client, job: dict[str, Any]) -> None:
    report = http.get(f"/v1/jobs/{job['id']}/report")
    assert report.status_code == 200, report.text
    assert report.json()["sparsity"]["target"] == 0.5
    artifacts = {a["name"]: a for a in job["artifacts"]}
    pruned = http.get(f"/v1/jobs/{job['id']}/artifacts/model")
    assert pruned.status_code == 200
    assert pruned.headers["content-type"] == "application/octet-stream"
    assert pruned.headers["content-disposition"].endswith(".onnx")
    assert hashlib.sha256(pruned.content).hexdigest() == artifacts["model"]["sha256"]
    assert_problem(http.get(f"/v1/jobs/{job['id']}/artifacts/weights.bin"), 404)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
