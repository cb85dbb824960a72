"""createJob refuses an activation method on a model whose two in-memory copies would not fit
the measurement budget (SHEARS_MEASURE_MEMORY_BYTES), with a 422 that says so; data-free
methods are never refused for size (they stream)."""

from datetime import UTC, datetime

import pytest

from api_schemas import PruneSpec
from service.memory_budget import check_memory_budget
from service.problems import ProblemError
from storage import ModelRecord

GIB = 1024**3


def _model(size: int) -> ModelRecord:
    return ModelRecord(
        "mdl_1", "t", "big.tar", "0" * 64, size, "onnx", "ready", {}, None, datetime.now(UTC)
    )


def _spec(method: str) -> PruneSpec:
    return PruneSpec.model_validate({"sparsity": 0.5, "method": {"name": method}})


@pytest.mark.parametrize("method", ["wanda", "sparsegpt", "obd"])
def test_an_activation_method_on_a_model_above_the_budget_is_refused(method: str) -> None:
    with pytest.raises(ProblemError) as err:
        check_memory_budget(_spec(method), _model(4 * GIB), 1 * GIB)
    assert err.value.status_code == 422
    assert err.value.code == "model_too_large"
    assert "SHEARS_MEASURE_MEMORY_BYTES" in str(err.value.detail)
    assert err.value.errors[0].field == "method.name"


def test_an_activation_method_on_a_model_within_the_budget_is_accepted() -> None:
    check_memory_budget(_spec("wanda"), _model(GIB // 4), 1 * GIB)


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_data_free_methods_are_accepted_whatever_the_size(method: str) -> None:
    check_memory_budget(_spec(method), _model(16 * GIB), 1 * GIB)
