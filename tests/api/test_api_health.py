"""Liveness, readiness and Prometheus metrics."""

import re

import httpx
from api_http import create_job


def test_healthz_answers_without_dependencies(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_database_blob_store_and_broker(http: httpx.Client) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "blob_store": "ok", "broker": "ok"},
    }


def test_metrics_count_jobs_by_status_and_requests_by_route_template(
    http: httpx.Client, onnx_model: dict[str, str]
) -> None:
    job = create_job(http, onnx_model["id"], {"sparsity": 0.5})
    http.get(f"/v1/jobs/{job['id']}")
    http.get("/v1/jobs/job_missing")
    response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    queued = re.search(r'^shears_jobs\{status="queued"\} ([0-9.]+)$', text, re.M)
    assert queued and float(queued.group(1)) >= 1
    assert 'route="/v1/jobs/{job_id}",status="200"' in text
    assert 'route="/v1/jobs/{job_id}",status="404"' in text
    assert job["id"] not in text and "job_missing" not in text
