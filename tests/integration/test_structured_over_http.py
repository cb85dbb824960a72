"""Structured pruning as a pipeline sees it over HTTP: a channel-pruned ONNX model comes back
physically smaller and runs in ONNX Runtime with the same signature; 2:4 masks are exact;
impossible N:M specs are refused at createJob."""

from pathlib import Path
from typing import Any

import httpx
import onnx
import onnxruntime as ort
import pytest

from tests.engine.structured_factories import ResidualConcatNet, export, images, make_net
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.shears import Stack

pytestmark = pytest.mark.integration

LATENCY = {"batch_sizes": [1], "iterations": 3, "warmup": 1}


@pytest.fixture(scope="module")
def residual_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(make_net(ResidualConcatNet), tmp_path_factory.mktemp("net") / "net.onnx")


def _job(http: httpx.Client, model_file: Path, spec: dict[str, Any]) -> dict[str, Any]:
    model = wait_for_model(http, upload_model(http, model_file)["id"])
    job = wait_for_job(http, create_job(http, model["id"], spec)["id"])
    assert job["status"] == "succeeded", job
    return job


def _signature(session: ort.InferenceSession) -> list[tuple[str, str, list[Any]]]:
    values = [*session.get_inputs(), *session.get_outputs()]
    return [(v.name, v.type, list(v.shape)) for v in values]


def test_channel_pruned_onnx_comes_back_smaller_with_the_same_signature(
    stack: Stack, residual_net: Path
) -> None:
    spec = {"sparsity": 0.5, "granularity": {"kind": "channel"}, "latency": LATENCY}
    with stack.client() as http:
        job = _job(http, residual_net, spec)
        content = http.get(f"/v1/jobs/{job['id']}/artifacts/model").content
        report = http.get(f"/v1/jobs/{job['id']}/report").json()

    assert len(content) < residual_net.stat().st_size / 2
    dense, pruned = ort.InferenceSession(str(residual_net)), ort.InferenceSession(content)
    assert _signature(pruned) == _signature(dense)
    assert pruned.run(None, {"x": images(6)})[0].shape == (6, 10)
    structure = report["structure"]
    assert structure["physically_smaller"] is True
    assert structure["parameters"]["after"] < structure["parameters"]["before"] / 2
    tied = next(g for g in structure["groups"] if "stem.0.weight" in g["layers"])
    assert "block.3.weight" in tied["layers"] and tied["pruned"]
    assert report["latency"]["results"][0]["speedup"] > 0
    assert "smaller dense matrix" in report["latency"]["explanation"]


def test_2_4_masks_over_http_are_exact_and_bad_nm_specs_are_refused(
    stack: Stack, residual_net: Path
) -> None:
    spec = {"sparsity": 0.5, "granularity": {"kind": "n:m", "n": 2, "m": 4}, "latency": LATENCY}
    with stack.client() as http:
        job = _job(http, residual_net, spec)
        content = http.get(f"/v1/jobs/{job['id']}/artifacts/model").content
        report = http.get(f"/v1/jobs/{job['id']}/report").json()
        model_id = job["model_id"]
        refused = [
            http.post("/v1/jobs", json={"model_id": model_id, "spec": {**spec, **change}})
            for change in (
                {"sparsity": 0.75},
                {"granularity": {"kind": "n:m", "n": 4, "m": 4}},
                {"granularity": {"kind": "n:m", "n": 2, "m": 64}},
            )
        ]

    weights = {
        i.name: onnx.numpy_helper.to_array(i)
        for i in onnx.load_from_string(content).graph.initializer
    }
    layers = report["structure"]["layers"]
    assert any(layer["pruned"] for layer in layers) and any(not layer["pruned"] for layer in layers)
    for layer in layers:
        values = weights[layer["name"]]
        matrix = values.reshape(values.shape[0], -1)  # Conv and Gemm(transB): out x in
        zeros = (
            (matrix.reshape(matrix.shape[0], -1, 4) == 0).sum(axis=-1) if layer["pruned"] else None
        )
        assert zeros is None or (zeros == 2).all(), layer["name"]
    assert report["structure"]["sparse_tensor_core_layers"] == ["head.3.weight"]
    for response in refused:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
