"""Reproducible jobs over real HTTP with a real worker (issue 17): the succeeded job's
manifest hash is the one createJob computed and the report's, and `reuse: identical` answers
that job instead of paying for the same work again."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.shears import Stack

pytestmark = pytest.mark.integration


def job_ids(http: httpx.Client, **params: str) -> list[str]:
    response = http.get("/v1/jobs", params={"limit": "100", **params})
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["items"]]


def post_job(http: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return http.post("/v1/jobs", json=body, headers=headers)


def test_an_identical_job_is_answered_by_the_earlier_one_and_nothing_is_queued(
    stack: Stack, onnx_model_file: Path
) -> None:
    with stack.client() as http:
        model = wait_for_model(http, upload_model(http, onnx_model_file)["id"])
        spec = fast_spec()
        created = create_job(http, model["id"], spec)
        first = wait_for_job(http, created["id"])
        assert first["status"] == "succeeded", first
        report = http.get(f"/v1/jobs/{first['id']}/report").json()
        # The API (at createJob) and the engine (beside the artifact) computed the same.
        assert report["manifest_sha256"] == created["manifest_sha256"]
        assert first["manifest_sha256"] == created["manifest_sha256"]
        assert report["manifest"]["model_sha256"] == model["sha256"]

        body = {"model_id": model["id"], "spec": spec, "reuse": "identical"}
        for headers in ({}, {"Idempotency-Key": "pipeline-run-7"}):
            reused = post_job(http, body, **headers)
            assert reused.status_code == 200, reused.text
            assert reused.json()["id"] == first["id"]
            assert reused.headers["location"] == f"/v1/jobs/{first['id']}"
        assert job_ids(http) == [first["id"]]  # no second job: nothing was queued

        changed = post_job(http, {**body, "spec": fast_spec(sparsity=0.6)})
        assert changed.status_code == 202, changed.text
        assert changed.json()["manifest_sha256"] != first["manifest_sha256"]
        assert job_ids(http, manifest_sha256=first["manifest_sha256"]) == [first["id"]]
        assert job_ids(http, manifest_sha256=changed.json()["manifest_sha256"]) == [
            changed.json()["id"]
        ]
