"""Distillation after a one-shot pass as a client drives it (issue 15): a BERT-shaped encoder
with integer inputs (token ids and an attention mask) as ONNX and TorchScript, unlabeled
token sequences uploaded as calibration data, jobs whose reports carry the `distill` block
and whose artifacts hold the distilled weights with the zeros of the one-shot pass; a spec
asking for distillation without calibration data is a 422 naming the field."""

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.engine.distill_factories import export_token_onnx, export_token_torchscript, tokens
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.shears import Stack

pytestmark = pytest.mark.integration
LATENCY = {"batch_sizes": [1], "iterations": 3, "warmup": 1, "budget_s": 0}


def _calibration(http: httpx.Client) -> str:
    ids, mask = tokens()
    buffer = io.BytesIO()
    np.savez(buffer, input_ids=ids, attention_mask=mask)
    response = http.post("/v1/datasets", files={"file": ("tokens.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _model(http: httpx.Client, path: Path) -> str:
    model = wait_for_model(http, upload_model(http, path)["id"])
    assert model["status"] == "ready", model
    return str(model["id"])


def _spec(calibration: str | None, **fields: Any) -> dict[str, Any]:
    return {
        "method": {"name": "wanda"},
        "sparsity": 0.5,
        "scope": "layerwise",
        "calibration": None if calibration is None else {"dataset_id": calibration},
        "distill": {"steps": 30, "lr": 0.003, "batch_size": 8},
        "latency": LATENCY,
        **fields,
    }


def test_distillation_after_one_shot_prunes_onnx_and_torchscript_token_encoders(
    stack: Stack, tmp_path: Path
) -> None:
    paths = [
        export_token_onnx(tmp_path / "enc.onnx"),
        export_token_torchscript(tmp_path / "enc.pt"),
    ]
    with stack.client() as http:
        calibration = _calibration(http)
        jobs = [create_job(http, _model(http, path), _spec(calibration)) for path in paths]
        for job in jobs:
            done = wait_for_job(http, job["id"], timeout=300.0)
            assert done["status"] == "succeeded", done
            report = http.get(f"/v1/jobs/{job['id']}/report").json()
            block = report["distill"]
            assert block["steps"] == 30 and block["layers"] == 6 and block["unmatched"] == []
            assert block["loss_after"] < block["loss_before"]
            assert block["fidelity_after"] > block["fidelity_before"]
            assert report["quality"]["fidelity"]["output_cosine"] == pytest.approx(
                block["fidelity_after"], abs=1e-4
            )
            for layer in report["sparsity"]["layers"]:
                assert (
                    abs(layer["parameters"] / 2 - (layer["parameters"] - layer["nonzeros"])) <= 0.5
                )
            assert report["timings"]["retrain_s"] > 0
            artifact = http.get(f"/v1/jobs/{job['id']}/artifacts/model")
            assert artifact.status_code == 200 and len(artifact.content) > 0


def test_distillation_without_calibration_is_a_problem_naming_the_field(
    stack: Stack, tmp_path: Path
) -> None:
    with stack.client() as http:
        model = _model(http, export_token_onnx(tmp_path / "enc.onnx"))
        response = http.post("/v1/jobs", json={"model_id": model, "spec": _spec(None)})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert {e["field"] for e in response.json()["errors"]} == {"spec.calibration"}
        spec = _spec("ds_unused", retrain={"dataset_id": "ds_unused", "loss": "distill"})
        response = http.post("/v1/jobs", json={"model_id": model, "spec": spec})
        assert response.status_code == 422
        assert {e["field"] for e in response.json()["errors"]} == {"spec.distill"}
