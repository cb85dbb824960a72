"""A transformer ONNX export through the HTTP API loses attention heads and MLP neurons
physically: it runs in ONNX Runtime with the same signature, the report's ``structured``
headline gives parameters, FLOPs, heads and neurons removed per layer, file size and the
measured speedup, and a FLOPs target is searched with its curve. Data-driven options without
calibration data are refused at createJob."""

import io
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.engine.head_factories import onnx_encoder, tokens
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.shears import Stack

pytestmark = pytest.mark.integration

LATENCY = {"batch_sizes": [1, 4], "iterations": 3, "warmup": 1}


def _upload_dataset(http: httpx.Client, **arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    response = http.post("/v1/datasets", files={"file": ("calibration.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_heads_and_neurons_leave_an_onnx_transformer_over_http(
    stack: Stack, tmp_path: Path
) -> None:
    encoder = onnx_encoder(tmp_path / "encoder.onnx", "hf")
    with stack.client() as http:
        model = wait_for_model(http, upload_model(http, encoder)["id"])
        refused = http.post(
            "/v1/jobs",
            json={
                "model_id": model["id"],
                "spec": {
                    "sparsity": 0.5,
                    "granularity": {"kind": "channel", "importance": "output_error"},
                },
            },
        )
        data = _upload_dataset(http, tokens=tokens(48, seed=5))
        spec = {
            "sparsity": 0.75,
            "granularity": {
                "kind": "channel",
                "importance": "output_error",
                "allocation": "global",
                "rescale": True,
                "target": {"flops": 0.6},
            },
            "calibration": {"dataset_id": data, "samples": 48},
            "latency": LATENCY,
        }
        job = wait_for_job(http, create_job(http, model["id"], spec)["id"])
        assert job["status"] == "succeeded", job
        content = http.get(f"/v1/jobs/{job['id']}/artifacts/model").content
        report = http.get(f"/v1/jobs/{job['id']}/report").json()

    assert refused.status_code == 422 and "calibration" in refused.text
    dense, pruned = ort.InferenceSession(str(encoder)), ort.InferenceSession(content)
    signature = [(v.name, v.type, v.shape) for v in (*dense.get_inputs(), *dense.get_outputs())]
    assert [(v.name, v.type, v.shape) for v in (*pruned.get_inputs(), *pruned.get_outputs())] == (
        signature
    )
    assert pruned.run(None, {"tokens": tokens(3)})[0].shape == (3, 32)
    headline = report["structured"]
    assert headline["heads_removed"]["total"] > 0 and headline["heads_removed"]["of"] == 8
    assert headline["neurons_removed"]["total"] > 0
    assert set(headline["heads_removed"]["per_layer"]) == {
        "/blocks.0/attention",
        "/blocks.1/attention",
    }
    assert headline["parameters"]["after"] < headline["parameters"]["before"]
    assert headline["flops"]["ratio"] <= 0.6
    assert headline["file_bytes"]["after"] < headline["file_bytes"]["before"]
    assert set(headline["speedup"]) == {"1", "4"} and all(headline["speedup"].values())
    target = report["structure"]["target"]
    assert target["met"] and target["kind"] == "flops" and len(target["curve"]) > 1
    assert report["quality"]["fidelity"]["output_cosine"] > 0.5
    assert headline["output_cosine"] == report["quality"]["fidelity"]["output_cosine"]
