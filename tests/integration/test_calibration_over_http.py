"""Loss-based pruning as a client drives it (issue 3): upload a model and an `.npz` of
calibration data, create `obd` / `sparsegpt` / `wanda` jobs, read the report; data that does
not fit the model is a 422 naming the array."""

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import INPUT_FEATURES, TORCHSCRIPT_INPUT_SHAPES, fast_spec
from tests.support.shears import Stack

pytestmark = pytest.mark.integration
TORCHSCRIPT_INPUTS = {"input_shapes": TORCHSCRIPT_INPUT_SHAPES}

METHODS = ({"name": "wanda"}, {"name": "sparsegpt"}, {"name": "obd"})


def _upload_dataset(http: httpx.Client, **arrays: np.ndarray) -> dict[str, Any]:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    response = http.post("/v1/datasets", files={"file": ("calibration.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _ready(http: httpx.Client, path: Path) -> dict[str, Any]:
    model = wait_for_model(http, upload_model(http, path)["id"])
    assert model["status"] == "ready", model
    return model


def _inputs(samples: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((samples, INPUT_FEATURES)).astype(np.float32)


def test_each_loss_based_method_prunes_onnx_and_torchscript_with_calibration_data(
    stack: Stack, onnx_model_file: Path, torchscript_model_file: Path
) -> None:
    with stack.client() as http:
        onnx_model = _ready(http, onnx_model_file)
        script_model = _ready(http, torchscript_model_file)
        labels = np.arange(32) % 4
        onnx_data = _upload_dataset(http, x=_inputs(), labels=labels)
        script_data = _upload_dataset(http, input=_inputs())  # no labels: OBD uses predictions
        submitted = []
        for method in METHODS:
            calibration = {"dataset_id": onnx_data["id"], "samples": 24}
            spec = fast_spec(method=method, calibration=calibration)
            submitted.append(create_job(http, onnx_model["id"], spec))
            calibration = {"dataset_id": script_data["id"], "samples": 24}
            spec = fast_spec(
                method=method, calibration=calibration, input_shapes=TORCHSCRIPT_INPUT_SHAPES
            )
            submitted.append(create_job(http, script_model["id"], spec))
        for job in submitted:
            done = wait_for_job(http, job["id"], timeout=120.0)
            assert done["status"] == "succeeded", done
            report = http.get(f"/v1/jobs/{job['id']}/report").json()
            assert report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.02)
            assert report["calibration"]["samples"] == 24
            assert report["calibration"]["dataset_id"] == job["spec"]["calibration"]["dataset_id"]
            assert report["calibration"]["calibration_s"] >= 0


def _zeros_per_group(weights: dict[str, np.ndarray], m: int) -> dict[str, list[int]]:
    """The distinct zero counts per run of m inputs in each (outputs, inputs) weight."""
    return {
        name: sorted(set((w.reshape(w.shape[0], -1, m) == 0).sum(axis=-1).ravel().tolist()))
        for name, w in weights.items()
        if name.endswith("weight")
    }


def _onnx_weights(content: bytes) -> dict[str, np.ndarray]:
    import onnx

    graph = onnx.load_from_string(content).graph
    return {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}


def _torchscript_weights(content: bytes) -> dict[str, np.ndarray]:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        module = torch.jit.load(io.BytesIO(content))
    return {name: value.numpy() for name, value in module.state_dict().items()}


def test_sparsegpt_and_wanda_write_exactly_2_of_4_into_onnx_and_torchscript(
    stack: Stack, onnx_model_file: Path, torchscript_model_file: Path
) -> None:
    nm = {"kind": "n:m", "n": 2, "m": 4}
    with stack.client() as http:
        onnx_model = _ready(http, onnx_model_file)
        script_model = _ready(http, torchscript_model_file)
        onnx_data = _upload_dataset(http, x=_inputs())
        script_data = _upload_dataset(http, input=_inputs())
        cases = [
            (onnx_model, onnx_data, {"name": "sparsegpt"}, {}, _onnx_weights),
            (
                script_model,
                script_data,
                {"name": "wanda"},
                TORCHSCRIPT_INPUTS,
                _torchscript_weights,
            ),
        ]
        for model, data, method, extra, read in cases:
            calibration = {"dataset_id": data["id"], "samples": 16}
            spec = fast_spec(method=method, calibration=calibration, granularity=nm, **extra)
            done = wait_for_job(http, create_job(http, model["id"], spec)["id"], timeout=120.0)
            assert done["status"] == "succeeded", done
            report = http.get(f"/v1/jobs/{done['id']}/report").json()
            assert report["calibration"]["nm"]["layers_left_dense"] == []
            artifact = http.get(f"/v1/jobs/{done['id']}/artifacts/model")
            zeros = _zeros_per_group(read(artifact.content), 4)
            assert zeros == {"0.weight": [2], "2.weight": [2]}, (method, zeros)


def _problem(http: httpx.Client, model_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": spec})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


def test_calibration_data_that_does_not_fit_the_model_is_a_422_naming_the_array(
    stack: Stack, onnx_model_file: Path
) -> None:
    with stack.client() as http:
        model = _ready(http, onnx_model_file)
        misnamed = _upload_dataset(http, features=_inputs())
        narrow = _upload_dataset(http, x=_inputs()[:, :8])
        doubles = _upload_dataset(http, x=_inputs().astype(np.float64))
        cases = [
            (misnamed, "no array 'x'"),
            (narrow, f"expected [samples, {INPUT_FEATURES}]"),
            (doubles, "array 'x' is float64; the model expects float32"),
        ]
        for dataset, message in cases:
            spec = fast_spec(method={"name": "wanda"}, calibration={"dataset_id": dataset["id"]})
            problem = _problem(http, model["id"], spec)
            assert message in problem["detail"], problem
            assert problem["errors"][0]["field"] == "spec.calibration.dataset_id"

        problem = _problem(http, model["id"], fast_spec(method={"name": "sparsegpt"}))
        assert problem["errors"][0]["field"] == "spec.calibration"
        assert "needs calibration data" in problem["detail"]

        channels = fast_spec(
            method={"name": "wanda"},
            calibration={"dataset_id": misnamed["id"]},
            granularity={"kind": "channel"},
        )
        problem = _problem(http, model["id"], channels)
        assert "spec.granularity" in [e["field"] for e in problem["errors"]]
        assert "not 'channel'" in problem["detail"]
