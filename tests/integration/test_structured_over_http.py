"""Structured pruning as a pipeline sees it over HTTP: a channel-pruned ONNX model comes back
physically smaller and runs in ONNX Runtime with the same signature; 2:4 masks are exact;
impossible N:M specs are refused at createJob; channels ranked by Taylor importance on
uploaded calibration data."""

import io
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tests.engine.factories import export_onnx, export_torchscript
from tests.engine.structured_factories import ResidualConcatNet, export, images, make_net
from tests.engine.taylor_factories import (
    features,
    loud_rows_kept,
    mlp_with_loud_but_ignored_features,
)
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


def _upload_dataset(http: httpx.Client, **arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    response = http.post("/v1/datasets", files={"file": ("calibration.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_taylor_channel_jobs_over_http_drop_what_the_loss_ignores_in_onnx_and_torchscript(
    stack: Stack, tmp_path: Path
) -> None:
    net = mlp_with_loud_but_ignored_features()
    onnx_file = export_onnx(net, tmp_path / "mlp.onnx")
    script_file = export_torchscript(net, tmp_path / "mlp.pt")
    base = {"method": {"name": "taylor"}, "sparsity": 0.5, "granularity": {"kind": "channel"}}
    with stack.client() as http:
        onnx_data = _upload_dataset(http, x=features(), labels=np.arange(24) % 10)
        script_data = _upload_dataset(http, input=features())
        onnx_job = _job(
            http,
            onnx_file,
            {**base, "calibration": {"dataset_id": onnx_data}, "latency": LATENCY},
        )
        script_job = _job(
            http,
            script_file,
            {
                **base,
                "calibration": {"dataset_id": script_data},
                "input_shapes": {"input": [1, 32]},
                "latency": LATENCY,
            },
        )
        onnx_content = http.get(f"/v1/jobs/{onnx_job['id']}/artifacts/model").content
        script_content = http.get(f"/v1/jobs/{script_job['id']}/artifacts/model").content
        reports = [http.get(f"/v1/jobs/{j['id']}/report").json() for j in (onnx_job, script_job)]
        refused = http.post("/v1/jobs", json={"model_id": onnx_job["model_id"], "spec": base})

    assert refused.status_code == 422 and "calibration" in refused.text
    dense, pruned = ort.InferenceSession(str(onnx_file)), ort.InferenceSession(onnx_content)
    assert _signature(pruned) == _signature(dense)
    assert pruned.run(None, {"x": features(5)})[0].shape == (5, 10)
    first = {i.name: i for i in onnx.load_from_string(onnx_content).graph.initializer}
    assert loud_rows_kept(onnx.numpy_helper.to_array(first["0.weight"])) == 0
    script_path = tmp_path / "pruned.pt"
    script_path.write_bytes(script_content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        script = torch.jit.load(str(script_path))
    weight = script.state_dict()["0.weight"].numpy()
    assert weight.shape == (32, 32) and loud_rows_kept(weight) == 0
    for report, targets in zip(reports, ("dataset labels", "model predictions"), strict=True):
        assert report["structure"]["importance"] == "taylor"
        assert report["structure"]["physically_smaller"] is True
        assert report["calibration"]["targets"].startswith(targets)
        assert report["latency"]["results"][0]["speedup"] > 0
