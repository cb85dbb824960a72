"""ONNX retraining trains every learned initializer of the graph through its torch conversion
and writes each one back under its own name, whatever operator reads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pruning import prune
from tests.engine.training_factories import (
    MatMulNet,
    digits_datasets,
    export_digits,
    held_out_accuracy,
    make_digits_convnet,
    retrain_spec,
    trained,
)


def test_matmul_bias_and_layer_norm_are_trained_and_written_back(tmp_path: Path) -> None:
    model = export_digits(trained(MatMulNet(), epochs=3), tmp_path / "net.onnx")
    ops = [n.op_type for n in onnx.load(str(model)).graph.node]
    assert {"MatMul", "Add", "LayerNormalization", "Gemm"} <= set(ops)
    spec = retrain_spec(0.8, {"kind": "gradual", "steps": 3}, epochs=3)
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))
    training = result.report["training"]
    names = ["w1", "b1", "norm.weight", "norm.bias", "head.weight", "head.bias"]
    assert sorted(training["trained"]) == sorted(names)
    assert training["frozen"] == []
    before = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(model)).graph.initializer}
    artifact = result.artifacts["model"]
    after = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(artifact)).graph.initializer}
    assert all(not np.array_equal(before[n], after[n]) for n in names)
    assert [n.op_type for n in onnx.load(str(artifact)).graph.node] == ops
    assert result.report["quality"]["metric"]["pruned"] == held_out_accuracy(artifact)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_channel_pruning_fine_tunes_the_physically_smaller_model(
    tmp_path: Path, suffix: str
) -> None:
    model = export_digits(trained(make_digits_convnet(), epochs=2), tmp_path / f"net{suffix}")
    spec = retrain_spec(0.5, {"kind": "one_shot"}, epochs=2)
    spec["granularity"] = {"kind": "channel"}
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))
    report = result.report
    assert report["structure"]["physically_smaller"] is True
    parameters = report["structure"]["parameters"]
    assert parameters["after"] < parameters["before"]
    artifact = result.artifacts["model"]
    assert report["quality"]["metric"]["pruned"] == held_out_accuracy(artifact)
    assert report["training"]["steps"] == 2 * 22
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in result.artifacts.values()
    )
