"""createJob's checks of retraining and evaluation data (issue 4), before anything is queued:
the dataset feeds the model's inputs and carries what the loss or metric compares against;
each refusal names the field. No worker consumes the job queue here: accepted jobs stay
queued."""

import io
from typing import Any

import httpx
import numpy as np
import pytest
from api_http import assert_problem, create_job

from tests.support.models import INPUT_FEATURES, OUTPUT_FEATURES, fast_spec

SAMPLES = 32


@pytest.fixture
def model_id(onnx_model: dict[str, Any]) -> str:
    return str(onnx_model["id"])


def _dataset(http: httpx.Client, **arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    response = http.post("/v1/datasets", files={"file": ("data.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((SAMPLES, INPUT_FEATURES)).astype(np.float32)


def _class_ids() -> np.ndarray:
    return np.arange(SAMPLES) % OUTPUT_FEATURES


def _targets(*shape: int) -> np.ndarray:
    return np.zeros((SAMPLES, *shape), dtype=np.float32)


def _spec(train: str, loss: str = "cross_entropy", **extra: Any) -> dict[str, Any]:
    retrain = {"dataset_id": train, "epochs": 2, "loss": loss}
    return fast_spec(
        **{"sparsity": 0.8, "schedule": {"kind": "gradual"}, "retrain": retrain, **extra}
    )


def _refusal(http: httpx.Client, model_id: str, spec: dict[str, Any]) -> dict[str, str]:
    """field -> message of a 422."""
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": spec})
    problem = assert_problem(response, 422)
    return {e["field"]: e["message"] for e in problem["errors"]}


def test_a_retraining_job_with_fitting_data_is_queued(http: httpx.Client, model_id: str) -> None:
    data = _dataset(http, x=_inputs(), labels=_class_ids())
    spec = _spec(data, evaluation={"dataset_id": data, "metric": "accuracy"})

    job = create_job(http, model_id, spec)

    assert job["status"] == "queued"
    assert job["spec"]["retrain"]["dataset_id"] == data
    assert job["spec"]["schedule"]["kind"] == "gradual"


def test_training_data_must_feed_the_model_inputs(http: httpx.Client, model_id: str) -> None:
    misnamed = _dataset(http, features=_inputs(), labels=_class_ids())
    narrow = _dataset(http, x=_inputs()[:, :8], labels=_class_ids())

    assert "no array 'x'" in _refusal(http, model_id, _spec(misnamed))["spec.retrain.dataset_id"]
    message = _refusal(http, model_id, _spec(narrow))["spec.retrain.dataset_id"]
    assert f"expected [samples, {INPUT_FEATURES}]" in message


def test_cross_entropy_and_accuracy_need_integer_class_ids(
    http: httpx.Client, model_id: str
) -> None:
    unlabelled = _dataset(http, x=_inputs())
    float_labels = _dataset(http, x=_inputs(), labels=_class_ids().astype(np.float32))
    evaluation = {"dataset_id": unlabelled, "metric": "accuracy"}

    refused = _refusal(http, model_id, _spec(unlabelled, evaluation=evaluation))
    assert "needs a `labels` array" in refused["spec.retrain.dataset_id"]
    assert "needs a `labels` array" in refused["spec.evaluation.dataset_id"]
    refused = _refusal(http, model_id, _spec(float_labels))
    assert "integer class ids" in refused["spec.retrain.dataset_id"]


def test_mse_needs_targets_shaped_like_the_first_output(http: httpx.Client, model_id: str) -> None:
    unlabelled = _dataset(http, x=_inputs())
    misshapen = _dataset(http, x=_inputs(), targets=_targets(OUTPUT_FEATURES + 1))
    targets = _dataset(http, x=_inputs(), targets=_targets(OUTPUT_FEATURES))
    float_labels = _dataset(http, x=_inputs(), labels=_targets(OUTPUT_FEATURES))

    assert (
        "needs a `targets` array"
        in _refusal(http, model_id, _spec(unlabelled, "mse"))["spec.retrain.dataset_id"]
    )
    evaluation = {"dataset_id": misshapen, "metric": "mse"}
    refused = _refusal(http, model_id, _spec(misshapen, "mse", evaluation=evaluation))
    assert "first output" in refused["spec.retrain.dataset_id"]
    assert "first output" in refused["spec.evaluation.dataset_id"]
    for data in (targets, float_labels):
        create_job(
            http, model_id, _spec(data, "mse", evaluation={"dataset_id": data, "metric": "mse"})
        )


def test_distillation_needs_only_the_inputs(http: httpx.Client, model_id: str) -> None:
    unlabelled = _dataset(http, x=_inputs())

    assert create_job(http, model_id, _spec(unlabelled, "distill"))["status"] == "queued"


def test_an_unknown_training_or_evaluation_dataset_is_named(
    http: httpx.Client, model_id: str
) -> None:
    spec = _spec("ds_missing", evaluation={"dataset_id": "ds_gone"})

    refused = _refusal(http, model_id, spec)

    assert "no dataset 'ds_missing'" in refused["spec.retrain.dataset_id"]
    assert "no dataset 'ds_gone'" in refused["spec.evaluation.dataset_id"]


def test_structured_schedules_are_queued_and_channel_regrowth_refused(
    http: httpx.Client, model_id: str
) -> None:
    data = _dataset(http, x=_inputs(), labels=_class_ids())
    gradual_channels = _spec(data, sparsity=0.5, granularity={"kind": "channel"})
    gradual_nm = _spec(data, sparsity=0.5, granularity={"kind": "n:m", "n": 2, "m": 4})
    regrown_channels = _spec(data, sparsity=0.5, granularity={"kind": "channel"})
    regrown_channels["retrain"]["regrow"] = True

    assert create_job(http, model_id, gradual_channels)["status"] == "queued"
    assert create_job(http, model_id, gradual_nm)["status"] == "queued"
    assert "single weights" in _refusal(http, model_id, regrown_channels)["spec.retrain.regrow"]
