"""createJob and the job resource. No worker consumes the job queue here: jobs stay queued."""

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_http import assert_problem, create_job, upload_model

from tests.support.models import INPUT_FEATURES, fast_spec


@pytest.fixture
def model_id(onnx_model: dict[str, Any]) -> str:
    return str(onnx_model["id"])


def prunable_names(http: httpx.Client, model_id: str) -> list[str]:
    return [t["name"] for t in http.get(f"/v1/models/{model_id}").json()["prunable"]]


def test_create_job_queues_it_and_answers_202_with_location(
    http: httpx.Client, model_id: str
) -> None:
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": fast_spec()})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["id"].startswith("job_")
    assert job["status"] == "queued"
    assert job["attempt"] == 0 and job["error"] is None and job["artifacts"] == []
    assert job["spec"]["sparsity"] == 0.5
    assert http.get(f"/v1/jobs/{job['id']}").json() == job


def test_a_layer_pattern_that_matches_nothing_is_422_naming_it(
    http: httpx.Client, model_id: str
) -> None:
    spec = fast_spec(layers={"include": ["*"], "exclude": [], "overrides": {"conv*": 0.5}})
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": spec})
    problem = assert_problem(response, 422, "invalid_spec")
    [error] = problem["errors"]
    assert error["field"] == "spec.layers.overrides.conv*"
    assert "'conv*'" in error["message"]
    assert all(name in error["message"] for name in prunable_names(http, model_id))


def test_an_unmatched_include_pattern_names_its_index(http: httpx.Client, model_id: str) -> None:
    spec = fast_spec(layers={"include": ["*", "encoder.*"]})
    problem = assert_problem(http.post("/v1/jobs", json={"model_id": model_id, "spec": spec}), 422)
    assert [e["field"] for e in problem["errors"]] == ["spec.layers.include[1]"]


def test_excluding_every_tensor_is_422(http: httpx.Client, model_id: str) -> None:
    spec = fast_spec(layers={"include": ["*"], "exclude": ["*"]})
    problem = assert_problem(http.post("/v1/jobs", json={"model_id": model_id, "spec": spec}), 422)
    assert problem["errors"][0]["field"] == "spec.layers"


def test_input_shapes_must_name_model_inputs(http: httpx.Client, model_id: str) -> None:
    spec = fast_spec(input_shapes={"image": [1, 16]})
    problem = assert_problem(http.post("/v1/jobs", json={"model_id": model_id, "spec": spec}), 422)
    assert problem["errors"][0]["field"] == "spec.input_shapes.image"
    assert "x" in problem["errors"][0]["message"]


def test_torchscript_without_recorded_shapes_needs_input_shapes(
    http: httpx.Client, model_files: dict[str, Path]
) -> None:
    model = upload_model(http, model_files["scripted"], expect=201)
    assert model["format"] == "torchscript"
    [model_input] = model["inputs"]
    assert model_input["shape"] is None
    response = http.post("/v1/jobs", json={"model_id": model["id"], "spec": fast_spec()})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "spec.input_shapes"
    assert "TorchScript" in problem["errors"][0]["message"]
    shapes = {model_input["name"]: [1, INPUT_FEATURES]}
    create_job(http, model["id"], fast_spec(input_shapes=shapes))


def test_same_idempotency_key_and_body_return_the_same_job(
    http: httpx.Client, model_id: str
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = create_job(http, model_id, fast_spec(), headers=key)
    again = http.post("/v1/jobs", json={"model_id": model_id, "spec": fast_spec()}, headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert again.headers["location"] == f"/v1/jobs/{first['id']}"


def test_same_idempotency_key_with_another_body_is_422(http: httpx.Client, model_id: str) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    create_job(http, model_id, fast_spec(), headers=key)
    other = {"model_id": model_id, "spec": fast_spec(sparsity=0.9)}
    problem = assert_problem(http.post("/v1/jobs", json=other, headers=key), 422)
    assert problem["code"] == "idempotency_key_reused"
    assert problem["errors"][0]["field"] == "Idempotency-Key"


def test_cancel_ends_a_queued_job_and_answers_the_same_again(
    http: httpx.Client, model_id: str
) -> None:
    job = create_job(http, model_id, fast_spec())
    cancelled = http.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = http.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 200
    assert again.json() == cancelled.json()
    assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_the_report_is_409_until_the_job_succeeds(http: httpx.Client, model_id: str) -> None:
    job = create_job(http, model_id, fast_spec())
    problem = assert_problem(http.get(f"/v1/jobs/{job['id']}/report"), 409, "job_not_succeeded")
    assert "queued" in problem["detail"]


def test_artifacts_of_an_unfinished_job_are_404(http: httpx.Client, model_id: str) -> None:
    job = create_job(http, model_id, fast_spec())
    assert_problem(http.get(f"/v1/jobs/{job['id']}/artifacts/model"), 404)


def test_events_of_a_queued_job_are_an_empty_page(http: httpx.Client, model_id: str) -> None:
    job = create_job(http, model_id, fast_spec())
    page = http.get(f"/v1/jobs/{job['id']}/events", params={"after": 0}).json()
    assert page == {"items": [], "next_cursor": None}


def test_a_model_with_queued_jobs_cannot_be_deleted(
    http: httpx.Client, model_files: dict[str, Path]
) -> None:
    model = upload_model(http, model_files["onnx"], expect=201)
    job = create_job(http, model["id"], fast_spec())
    assert_problem(http.delete(f"/v1/models/{model['id']}"), 409)
    http.post(f"/v1/jobs/{job['id']}/cancel")
    assert http.delete(f"/v1/models/{model['id']}").status_code == 204


def test_jobs_page_through_with_cursors_newest_first(http: httpx.Client, model_id: str) -> None:
    made = [create_job(http, model_id, fast_spec())["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(4):  # the five just made are the newest: they fill the first pages
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/jobs", params=params).json()
        assert len(page["items"]) == 2
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        assert cursor is not None
    assert seen[:5] == list(reversed(made))
    assert len(seen) == len(set(seen))


def test_a_forged_cursor_or_limit_is_422(http: httpx.Client) -> None:
    assert (
        assert_problem(http.get("/v1/jobs", params={"cursor": "bm9wZQ"}), 422)["errors"][0]["field"]
        == "cursor"
    )
    assert_problem(http.get("/v1/jobs", params={"limit": 0}), 422)
    assert_problem(http.get("/v1/jobs", params={"limit": 201}), 422)


def test_jobs_filter_by_status(http: httpx.Client, model_id: str) -> None:
    job = create_job(http, model_id, fast_spec())
    http.post(f"/v1/jobs/{job['id']}/cancel")
    cancelled = http.get("/v1/jobs", params={"status": "cancelled", "limit": 200}).json()
    assert job["id"] in [j["id"] for j in cancelled["items"]]
    assert {j["status"] for j in cancelled["items"]} == {"cancelled"}
    problem = assert_problem(http.get("/v1/jobs", params={"status": "done"}), 422)
    assert problem["errors"][0]["field"] == "status"
