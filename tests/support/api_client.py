"""The HTTP calls a client makes, per API.md, for tests that drive a running stack."""

import time
from pathlib import Path
from typing import Any

import httpx

FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def upload_model(http: httpx.Client, path: Path, fmt: str | None = None) -> dict[str, Any]:
    """uploadModel; asserts 201 and returns the Model."""
    data = {"format": fmt} if fmt else {}
    with path.open("rb") as f:
        response = http.post("/v1/models", files={"file": (path.name, f)}, data=data)
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_for_model(http: httpx.Client, model_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """getModel until it is no longer `validating`."""
    return _poll(
        lambda: http.get(f"/v1/models/{model_id}"),
        lambda body: body["status"] != "validating",
        timeout,
        f"model {model_id} validated",
    )


def create_job(
    http: httpx.Client, model_id: str, spec: dict[str, Any], **headers: str
) -> dict[str, Any]:
    """createJob; asserts 202 and returns the Job."""
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": spec}, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for_job(
    http: httpx.Client,
    job_id: str,
    statuses: tuple[str, ...] = FINAL_STATUSES,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """getJob until its status is one of `statuses` (default: any final one)."""
    return _poll(
        lambda: http.get(f"/v1/jobs/{job_id}"),
        lambda body: body["status"] in statuses,
        timeout,
        f"job {job_id} in {statuses}",
    )


def _poll(get: Any, done: Any, timeout: float, what: str, interval: float = 0.2) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = get()
        assert response.status_code == 200, response.text
        body = dict(response.json())
        if done(body):
            return body
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {body}")
