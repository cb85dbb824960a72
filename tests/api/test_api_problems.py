"""Every error is RFC 9457 problem+json, and the OpenAPI document says so."""

import httpx
import pytest
from api_http import assert_problem

OPERATIONS = {
    "uploadModel", "listModels", "getModel", "deleteModel", "downloadModel", "inspectModel",
    "uploadDataset", "listDatasets", "getDataset", "deleteDataset",
    "createJob", "listJobs", "getJob", "cancelJob", "listJobEvents", "getJobReport",
    "getJobReportPage", "downloadJobArtifact", "health", "readiness", "metrics",
}  # fmt: skip


def test_validation_error_is_a_problem_naming_each_field(http: httpx.Client) -> None:
    body = {"model_id": "mdl_x", "spec": {"sparsity": 1.5, "scope": "everywhere"}}
    problem = assert_problem(http.post("/v1/jobs", json=body), 422, "validation_failed")
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"spec.sparsity", "spec.scope"}
    assert "spec.sparsity" in problem["detail"]


def test_a_problem_quotes_the_request_id_its_log_lines_carry(http: httpx.Client) -> None:
    given = http.get("/v1/jobs/job_nope", headers={"X-Request-ID": "pipeline-run-7"})
    assert assert_problem(given, 404)["request_id"] == "pipeline-run-7"
    made_up = http.post("/v1/jobs", json={"model_id": "mdl_x", "spec": {"sparsity": 2}})
    assert assert_problem(made_up, 422)["request_id"] == made_up.headers["X-Request-ID"]


def test_malformed_json_is_a_422_problem(http: httpx.Client) -> None:
    response = http.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/mdl_nope"),
        ("DELETE", "/v1/models/mdl_nope"),
        ("GET", "/v1/models/mdl_nope/content"),
        ("GET", "/v1/datasets/ds_nope"),
        ("DELETE", "/v1/datasets/ds_nope"),
        ("GET", "/v1/jobs/job_nope"),
        ("POST", "/v1/jobs/job_nope/cancel"),
        ("GET", "/v1/jobs/job_nope/events"),
        ("GET", "/v1/jobs/job_nope/report"),
        ("GET", "/v1/jobs/job_nope/artifacts/model"),
    ],
)
def test_unknown_ids_answer_404_problems(http: httpx.Client, method: str, path: str) -> None:
    assert_problem(http.request(method, path), 404, "not_found")


def test_create_job_for_an_unknown_model_is_404(http: httpx.Client) -> None:
    response = http.post("/v1/jobs", json={"model_id": "mdl_nope", "spec": {"sparsity": 0.5}})
    assert "mdl_nope" in assert_problem(response, 404)["detail"]


def test_unknown_routes_and_methods_are_problems(http: httpx.Client) -> None:
    assert_problem(http.get("/v2/everything"), 404)
    response = http.put("/v1/jobs")
    assert "PUT" in assert_problem(response, 405)["detail"]
    assert response.headers["allow"]


def test_a_json_body_over_one_mebibyte_is_413(http: httpx.Client) -> None:
    huge = b'{"model_id": "' + b"x" * (2 << 20) + b'"}'
    response = http.post("/v1/jobs", content=huge, headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload_too_large")


def test_openapi_names_every_operation_and_documents_problems(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    operations = {
        op["operationId"]: op for item in document["paths"].values() for op in item.values()
    }
    assert set(operations) == OPERATIONS
    assert all(op["tags"] for op in operations.values())
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for op_id in ("createJob", "getJob", "uploadModel"):
        for status, response in operations[op_id]["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {"application/problem+json": {"schema": problem_ref}}
    assert {"404", "409", "422", "503"} <= set(operations["createJob"]["responses"])
    assert {"413", "422", "503"} <= set(operations["uploadModel"]["responses"])
    form = operations["uploadModel"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"] == {"$ref": "#/components/schemas/Body_uploadModel"}
    form_schema = document["components"]["schemas"]["Body_uploadModel"]
    assert set(form_schema["properties"]) == {"file", "format", "name"}
