"""createJob with a learned-sparsity method (issue 16): each needs a training dataset, so a
spec without `retrain` is a 422 naming `spec.retrain`; schedules and granularities it cannot
use are refused at their field. Accepted jobs stay queued (no worker here)."""

from typing import Any

import httpx
import pytest
from api_http import assert_problem

from tests.support.models import fast_spec

METHODS = ("l0", "variational_dropout", "str", "movement")


def _fields(http: httpx.Client, model_id: str, spec: dict[str, Any]) -> dict[str, str]:
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": spec})
    problem = assert_problem(response, 422)
    return {e["field"]: e["message"] for e in problem["errors"]}


@pytest.mark.parametrize("method", METHODS)
def test_a_learned_method_without_retrain_is_a_422_naming_spec_retrain(
    http: httpx.Client, onnx_model: dict[str, Any], method: str
) -> None:
    fields = _fields(http, onnx_model["id"], fast_spec(sparsity=0.9, method={"name": method}))

    assert list(fields) == ["spec.retrain"]
    assert "training dataset" in fields["spec.retrain"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"schedule": {"kind": "iterative", "rounds": 2}}, "spec.schedule.kind"),
        ({"granularity": {"kind": "n:m", "n": 2, "m": 4}}, "spec.granularity"),
    ],
)
def test_a_learned_method_refuses_a_schedule_or_granularity_at_its_field(
    http: httpx.Client, onnx_model: dict[str, Any], extra: dict[str, Any], field: str
) -> None:
    spec = fast_spec(
        sparsity=0.5, method={"name": "l0"}, retrain={"dataset_id": "ds_x", "epochs": 2}, **extra
    )

    assert field in _fields(http, onnx_model["id"], spec)


def test_movement_takes_the_gradual_schedule(
    http: httpx.Client, onnx_model: dict[str, Any]
) -> None:
    spec = fast_spec(
        sparsity=0.9,
        method={"name": "movement"},
        schedule={"kind": "gradual"},
        retrain={"dataset_id": "ds_missing", "epochs": 2},
    )

    fields = _fields(http, onnx_model["id"], spec)  # only the unknown dataset is wrong

    assert list(fields) == ["spec.retrain.dataset_id"]
