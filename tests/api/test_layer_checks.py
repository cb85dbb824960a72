"""createJob's layer checks, called directly on a model row as the worker's inspection
records it: globs match tensor or node names, and unused weights count as matches (a job
skips them) but not as something to prune."""

from datetime import UTC, datetime
from typing import Any

import pytest

from api_schemas import PruneSpec
from service.problems import ProblemError
from service.spec_checks import check_spec
from storage import ModelRecord

INFO = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 6, 16]}],
    "prunable": [
        {
            "name": "onnx::MatMul_86",
            "shape": [16, 16],
            "op": "MatMul",
            "node": "/encoder/layer.0/attention/self/query/MatMul",
        },
        {"name": "classifier.weight", "shape": [4, 16], "op": "Gemm", "node": "/classifier/Gemm"},
    ],
    "unused": [{"tensor": "pooler.dense.weight", "node": "", "reason": "no node reads it"}],
}


def _check(layers: dict[str, Any]) -> None:
    model = ModelRecord(
        "mdl_1", "t", "bert.onnx", "0" * 64, 1, "onnx", "ready", INFO, None, datetime.now(UTC)
    )
    spec = PruneSpec.model_validate({"sparsity": 0.5, "layers": layers})
    check_spec(spec, model, lambda _: None)


def test_globs_may_name_nodes() -> None:
    _check({"include": ["/encoder/*"], "exclude": ["/classifier/*"]})


def test_a_glob_naming_an_unused_weight_is_accepted() -> None:
    _check({"exclude": ["pooler.*"]})


def test_selecting_only_unused_weights_is_refused_with_the_reason() -> None:
    with pytest.raises(ProblemError) as err:
        _check({"include": ["pooler.*"]})
    assert "no selected tensor can be pruned" in str(err.value.detail)
    assert "no node reads it" in str(err.value.detail)


def test_an_unmatched_glob_lists_node_names_beside_tensor_names() -> None:
    with pytest.raises(ProblemError) as err:
        _check({"include": ["/decoder/*"]})
    assert "onnx::MatMul_86 (/encoder/layer.0/attention/self/query/MatMul)" in err.value.detail
