"""A job's manifest hash over HTTP, with jobs that stay queued (no worker runs them): what
createJob computes, the listJobs filter, and `reuse: identical` with nothing succeeded yet.
Reuse of a succeeded job: tests/integration/test_reproducible_jobs_over_http.py."""

import re
import uuid
from typing import Any

import httpx
import pytest
from api_http import assert_problem, create_job

from tests.support.models import fast_spec

SHA256 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def model_id(onnx_model: dict[str, Any]) -> str:
    return str(onnx_model["id"])


def unique_spec() -> dict[str, Any]:
    """A spec no other test of the shared stack sends, so its manifest is this test's alone."""
    return fast_spec(sparsity=round(0.1 + uuid.uuid4().int % 10**6 / 10**7, 7))


def test_the_same_model_and_spec_give_the_same_manifest_and_another_spec_another(
    http: httpx.Client, model_id: str
) -> None:
    spec = unique_spec()
    first, second = (create_job(http, model_id, spec) for _ in range(2))
    other = create_job(http, model_id, {**spec, "sparsity": spec["sparsity"] + 0.01})
    assert SHA256.match(first["manifest_sha256"])
    assert first["manifest_sha256"] == second["manifest_sha256"]
    assert other["manifest_sha256"] != first["manifest_sha256"]


def test_jobs_filter_by_manifest_and_status_together(http: httpx.Client, model_id: str) -> None:
    spec = unique_spec()
    kept, cancelled = create_job(http, model_id, spec), create_job(http, model_id, spec)
    http.post(f"/v1/jobs/{cancelled['id']}/cancel")
    manifest = {"manifest_sha256": kept["manifest_sha256"]}
    found = http.get("/v1/jobs", params=manifest).json()["items"]
    assert [j["id"] for j in found] == [cancelled["id"], kept["id"]]  # newest first
    queued = http.get("/v1/jobs", params={**manifest, "status": "queued"}).json()["items"]
    assert [j["id"] for j in queued] == [kept["id"]]
    problem = assert_problem(http.get("/v1/jobs", params={"manifest_sha256": "ABC"}), 422)
    assert problem["errors"][0]["field"] == "manifest_sha256"


def test_reuse_without_an_earlier_succeeded_job_queues_a_new_one(
    http: httpx.Client, model_id: str
) -> None:
    spec = unique_spec()
    queued = create_job(http, model_id, spec)  # queued, never succeeded: nothing to reuse
    body = {"model_id": model_id, "spec": spec, "reuse": "identical"}
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["id"] != queued["id"]


def test_an_idempotency_key_answers_its_own_job_before_reuse_is_considered(
    http: httpx.Client, model_id: str
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"model_id": model_id, "spec": unique_spec(), "reuse": "identical"}
    first = http.post("/v1/jobs", json=body, headers=key)
    again = http.post("/v1/jobs", json=body, headers=key)
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["id"] == first.json()["id"]
    other = {**body, "reuse": "never"}  # another body under the same key: refused as ever
    problem = assert_problem(http.post("/v1/jobs", json=other, headers=key), 422)
    assert problem["code"] == "idempotency_key_reused"


def test_reuse_takes_only_never_or_identical(http: httpx.Client, model_id: str) -> None:
    body = {"model_id": model_id, "spec": fast_spec(), "reuse": "always"}
    problem = assert_problem(http.post("/v1/jobs", json=body), 422)
    assert problem["errors"][0]["field"] == "reuse"
