"""uploadModel and the model resource, validated by a real worker and the real engine."""

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from api_http import SharedStack, assert_problem, upload_model


def blob_files(stack: SharedStack) -> set[Path]:
    return {p for p in (stack.data_dir / "blobs" / "sha256").rglob("*") if p.is_file()}


def test_onnx_upload_is_validated_and_described(onnx_model: dict[str, Any]) -> None:
    assert onnx_model["status"] == "ready"
    assert onnx_model["format"] == "onnx"
    assert onnx_model["id"].startswith("mdl_")
    assert onnx_model["name"] == "mlp.onnx"
    assert [i["name"] for i in onnx_model["inputs"]] == ["x"]
    assert onnx_model["inputs"][0]["shape"][1] == 16
    assert len(onnx_model["prunable"]) == 2
    assert onnx_model["parameters"] == 16 * 32 + 32 + 32 * 4 + 4


def test_upload_answers_201_with_location(http: httpx.Client, model_files: dict[str, Path]) -> None:
    with model_files["onnx"].open("rb") as f:
        response = http.post("/v1/models", files={"file": ("m.onnx", f)}, data={"name": "mine"})
    assert response.status_code == 201, response.text
    model = response.json()
    assert response.headers["location"] == f"/v1/models/{model['id']}"
    assert http.get(response.headers["location"]).json() == model
    assert model["name"] == "mine"


def test_random_bytes_are_refused_and_leave_nothing_behind(
    http: httpx.Client, shared_stack: SharedStack, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(hashlib.sha512(b"not a model").digest() * 64)
    before_blobs = blob_files(shared_stack)
    problem = assert_problem(
        http.post("/v1/models", files={"file": junk.open("rb")}), 422, "invalid_model"
    )
    assert problem["errors"][0]["field"] == "file"
    listed = http.get("/v1/models", params={"limit": 200}).json()["items"]
    assert all(m["sha256"] != hashlib.sha256(junk.read_bytes()).hexdigest() for m in listed)
    assert blob_files(shared_stack) == before_blobs


def test_a_dataset_uploaded_as_a_model_is_refused_as_a_dataset(http: httpx.Client) -> None:
    data = io.BytesIO()
    np.savez(data, x=np.zeros((4, 16), np.float32), labels=np.arange(4))
    response = http.post("/v1/models", files={"file": ("digits.npz", data.getvalue())})
    problem = assert_problem(response, 422, "invalid_model")
    assert "NumPy archive (.npz)" in problem["detail"]
    assert "a dataset, not a model" in problem["errors"][0]["message"]


def test_an_empty_file_is_422(http: httpx.Client) -> None:
    response = http.post("/v1/models", files={"file": ("empty.onnx", b"")})
    assert assert_problem(response, 422)["errors"][0]["field"] == "file"


def test_a_missing_file_part_is_422_naming_it(http: httpx.Client) -> None:
    response = http.post("/v1/models", data={"name": "no file"}, files={"other": ("x", b"1")})
    assert assert_problem(response, 422)["errors"][0]["field"] == "other"
    response = http.post("/v1/models", data={"name": "no file"})
    assert_problem(response, 415)
    response = http.post("/v1/models", files={"name": (None, b"only a field")})
    assert assert_problem(response, 422)["errors"][0]["field"] == "file"


def test_an_unknown_format_is_422(http: httpx.Client, model_files: dict[str, Path]) -> None:
    with model_files["onnx"].open("rb") as f:
        response = http.post("/v1/models", files={"file": f}, data={"format": "keras"})
    assert assert_problem(response, 422)["errors"][0]["field"] == "format"


def test_user_file_names_never_become_paths(
    http: httpx.Client, model_files: dict[str, Path]
) -> None:
    raw = "../../etc/\x00pass\nwd\u202e" + "x" * 400
    model = upload_model(http, model_files["onnx"], expect=201, name=raw)
    assert model["name"] == "pass" + "wd" + "x" * 250
    content = http.get(f"/v1/models/{model['id']}/content")
    disposition = content.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "/" not in disposition.split(";")[1] and "\n" not in disposition


def test_download_returns_the_uploaded_bytes(
    http: httpx.Client, onnx_model: dict[str, Any], model_files: dict[str, Path]
) -> None:
    response = http.get(f"/v1/models/{onnx_model['id']}/content")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == model_files["onnx"].read_bytes()
    assert hashlib.sha256(response.content).hexdigest() == onnx_model["sha256"]


def test_a_traced_torchscript_upload_is_ready_with_its_signature(
    http: httpx.Client, model_files: dict[str, Path]
) -> None:
    model = upload_model(http, model_files["torchscript"], expect=201, format="torchscript")
    assert model["format"] == "torchscript"
    assert model["status"] == "ready"
    assert model["inputs"][0]["shape"] == [1, 16]
    assert [t["name"] for t in model["prunable"]] == ["0.weight", "2.weight"]


def test_declaring_the_wrong_format_is_422(
    http: httpx.Client, model_files: dict[str, Path]
) -> None:
    with model_files["onnx"].open("rb") as f:
        response = http.post("/v1/models", files={"file": f}, data={"format": "torchscript"})
    assert_problem(response, 422)


def test_delete_removes_the_model_but_not_shared_bytes(
    http: httpx.Client, onnx_model: dict[str, Any], model_files: dict[str, Path]
) -> None:
    copy = upload_model(http, model_files["onnx"], expect=201)
    assert copy["sha256"] == onnx_model["sha256"]
    assert http.delete(f"/v1/models/{copy['id']}").status_code == 204
    assert_problem(http.get(f"/v1/models/{copy['id']}"), 404)
    original = http.get(f"/v1/models/{onnx_model['id']}/content")
    assert original.content == model_files["onnx"].read_bytes()
