"""What a client does with webhooks over HTTP, for the tests that drive a running stack."""

import time
from typing import Any

import httpx

from tests.support.models import fast_spec

# Small delays so retries happen within a test; the schedule keeps its shape (x1, x6, x24...).
FAST_WEBHOOKS: dict[str, Any] = {
    "webhook_allow_private": "true",
    "webhook_backoff_s": 0.2,
    "webhook_poll_interval_s": 0.1,
    "webhook_timeout_s": 5,
}


def create_job_with_callback(
    http: httpx.Client, model_id: str, url: str, secret: str, **spec: Any
) -> dict[str, Any]:
    body = {
        "model_id": model_id,
        "spec": fast_spec(**spec),
        "callback_url": url,
        "callback_secret": secret,
    }
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for_callback(
    http: httpx.Client,
    job_id: str,
    states: tuple[str, ...] = ("delivered", "failed"),
    timeout: float = 120.0,
    attempts: int = 0,
) -> dict[str, Any]:
    """getJob until the job's webhook is in one of `states` after at least `attempts`."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = dict(http.get(f"/v1/jobs/{job_id}").json())
        callback = job["callback"]
        if callback and callback["state"] in states and callback["attempts"] >= attempts:
            return job
        time.sleep(0.1)
    raise AssertionError(f"webhook of {job_id} not in {states} after {timeout:.0f}s: {job}")
