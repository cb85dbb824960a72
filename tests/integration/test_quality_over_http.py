"""Allocation, refinement and the accuracy-budget search as a client drives them (issue 15):
a trained digits model as ONNX and TorchScript, calibration and evaluation datasets uploaded,
jobs whose reports carry the per-layer allocation, the refinement and the curve, and whose
report.html draws it; a spec asking for allocation without calibration is a 422."""

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from api_schemas.report import Report
from tests.engine.training_factories import digits, export_digits, make_digits_mlp, trained
from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.shears import Stack

pytestmark = pytest.mark.integration
LATENCY = {"batch_sizes": [1], "iterations": 3, "warmup": 1, "budget_s": 0}


def _dataset(http: httpx.Client, name: str, part: slice) -> str:
    images, labels = digits()
    buffer = io.BytesIO()
    np.savez(buffer, **{name: images[part], "labels": labels[part]})  # type: ignore[arg-type]
    response = http.post("/v1/datasets", files={"file": ("digits.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _model(http: httpx.Client, path: Path) -> str:
    model = wait_for_model(http, upload_model(http, path)["id"])
    assert model["status"] == "ready", model
    return str(model["id"])


@pytest.fixture(scope="module")
def digits_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("digits")
    model = trained(make_digits_mlp(), epochs=3)
    return {s: export_digits(model, folder / f"mlp{s}") for s in (".onnx", ".pt")}


def _spec(calibration: str, evaluation: str, **fields: Any) -> dict[str, Any]:
    return {
        "method": {"name": "wanda"},
        "scope": "layerwise",
        "calibration": {"dataset_id": calibration, "samples": 128},
        "evaluation": {"dataset_id": evaluation, "metric": "accuracy"},
        "latency": LATENCY,
        **fields,
    }


def test_allocation_with_the_budget_search_prunes_onnx_and_torchscript(
    stack: Stack, digits_models: dict[str, Path]
) -> None:
    budget = {"auto": {"metric": "accuracy", "max_drop": 0.02}}
    with stack.client() as http:
        jobs = []
        for suffix, name, extra in (
            (".onnx", "x", {"allocation": "owl", "refine": {"kind": "dsnot"}}),
            (
                ".pt",
                "input",
                {
                    "allocation": {"kind": "sensitivity"},
                    "refine": {"kind": "least_squares"},
                    "input_shapes": {"input": [1, 1, 8, 8]},
                },
            ),
        ):
            model = _model(http, digits_models[suffix])
            train = _dataset(http, name, slice(0, 1400))
            test = _dataset(http, name, slice(1400, None))
            jobs.append(create_job(http, model, _spec(train, test, sparsity=budget, **extra)))
        for job in jobs:
            done = wait_for_job(http, job["id"], timeout=300.0)
            assert done["status"] == "succeeded", done
            report = http.get(f"/v1/jobs/{job['id']}/report").json()
            search, metric = report["search"], report["quality"]["metric"]
            assert search["prunings"] <= 8
            assert metric["dense"] - metric["pruned"] <= 0.02
            assert report["sparsity"]["target"] == search["chosen_sparsity"] > 0.2
            layers = report["allocation"]["layers"]
            assert len({round(layer["sparsity"], 3) for layer in layers}) > 1
            assert all(e["error_after"] <= e["error_before"] for e in report["refine"]["layers"])
            typed = Report.model_validate(report)  # what generated clients parse it with
            assert typed.allocation and typed.refine and typed.search
            html = http.get(f"/v1/jobs/{job['id']}/artifacts/report_html")
            assert html.status_code == 200
            assert 'id="chart-search"' in html.text


def test_allocation_without_calibration_is_a_problem_naming_the_field(
    stack: Stack, digits_models: dict[str, Path]
) -> None:
    with stack.client() as http:
        model = _model(http, digits_models[".onnx"])
        spec = {"sparsity": 0.5, "allocation": "owl", "latency": LATENCY}
        response = http.post("/v1/jobs", json={"model_id": model, "spec": spec})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        fields = {e["field"] for e in response.json()["errors"]}
        assert fields == {"spec.calibration"}
