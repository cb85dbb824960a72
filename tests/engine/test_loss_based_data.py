"""Calibration data and layer mechanics behind the loss-based methods: bad datasets are named,
SparseGPT's per-layer solve and its layer order, unconvertible operators for OBD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from pruning import prune
from pruning.errors import DataMismatch, InvalidSpec, UnsupportedModel, UnsupportedOperator
from pruning.methods.sparsegpt import sparsegpt_layer
from pruning.models.onnx_model import OnnxModel
from pruning.spec import CalibrationSpec, parse_spec
from tests.engine.factories import FAST_LATENCY, export_onnx, make_mlp


def _spec(method: str, **fields: Any) -> dict[str, Any]:
    return {
        "method": {"name": method},
        "sparsity": 0.5,
        "scope": "layerwise",
        "latency": dict(FAST_LATENCY, batch_sizes=[1]),
        "calibration": {"dataset_id": "d", "samples": 32},
        **fields,
    }


def _prune_with(tmp_path: Path, model: Path, method: str, **arrays: Any) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "d.npz"
    np.savez(data, **arrays)
    return prune(model, _spec(method), tmp_path / "out", datasets={"d": data})


@pytest.mark.parametrize(
    ("arrays", "named"),
    [
        ({"inputs": np.zeros((8, 32), np.float32)}, "no array 'x'"),
        ({"x": np.zeros((8, 32), np.float64)}, "array 'x' is float64, but the model's input is"),
        ({"x": np.zeros((8, 31), np.float32)}, "expected [samples, 32]"),
    ],
    ids=["missing", "dtype", "shape"],
)
def test_calibration_arrays_that_do_not_fit_the_model_are_named(
    tmp_path: Path, arrays: dict[str, Any], named: str
) -> None:
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    with pytest.raises(DataMismatch) as caught:
        _prune_with(tmp_path, model, "wanda", **arrays)
    assert named in caught.value.message


def _correlated_inputs(tokens: int, features: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(features, features, generator=generator)
    scales = torch.logspace(-1, 1, features)
    return (torch.randn(tokens, features, generator=generator) * scales) @ mixing


def test_sparsegpt_reconstructs_a_layer_better_than_magnitude_at_the_same_sparsity() -> None:
    x = _correlated_inputs(256, 32)
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(1))
    pruned = sparsegpt_layer(w, 2 * x.T @ x / len(x), 0.5, blocksize=8, percdamp=0.01)
    threshold = w.abs().flatten().kthvalue(w.numel() // 2).values
    magnitude = torch.where(w.abs() > threshold, w, torch.zeros_like(w))
    assert int((pruned == 0).sum()) == w.numel() // 2
    error = (x @ (w - pruned).T).pow(2).sum()
    assert error < 0.5 * (x @ (w - magnitude).T).pow(2).sum()


def test_sparsegpt_builds_each_layer_hessian_from_inputs_of_the_pruned_layers_before_it(
    tmp_path: Path,
) -> None:
    net = make_mlp()
    model = export_onnx(net, tmp_path / "mlp.onnx")
    x = np.random.default_rng(0).standard_normal((32, 32)).astype(np.float32)
    result = _prune_with(tmp_path, model, "sparsegpt", x=x)
    after = dict(OnnxModel.iter_parameters(result.artifacts["model"]))
    names = [layer["name"] for layer in result.report["sparsity"]["layers"]]
    first, bias = torch.tensor(after[names[0]]), net[0].bias.detach()
    hidden = torch.relu(torch.from_numpy(x) @ first.T + bias)  # the pruned first layer's output
    dense_second = net[2].weight.detach()
    expected = sparsegpt_layer(dense_second, 2 * hidden.T @ hidden / 32, 0.5, 128, 0.01)
    np.testing.assert_allclose(after[names[1]], expected.numpy(), atol=1e-4)


def _contrib_op_model(path: Path, op: str, domain: str) -> Path:
    """x [batch, 8] -> MatMul(W) -> ``op``: a graph ONNX Runtime runs."""
    weight = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node(op, ["h"], ["y"], domain=domain),
        ],
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weight, "W")],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def test_obd_names_an_operator_that_has_no_torch_conversion_while_wanda_still_works(
    tmp_path: Path,
) -> None:
    model = _contrib_op_model(tmp_path / "gelu.onnx", "FastGelu", "com.microsoft")
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    with pytest.raises(UnsupportedOperator) as caught:
        _prune_with(tmp_path, model, "obd", x=x)
    assert "'FastGelu'" in caught.value.message
    result = _prune_with(tmp_path / "w", model, "wanda", x=x)
    assert result.report["sparsity"]["achieved"] == pytest.approx(0.5)


def test_obd_refuses_a_model_whose_output_has_no_gradient_to_its_weights(
    tmp_path: Path,
) -> None:
    model = _contrib_op_model(tmp_path / "hardmax.onnx", "Hardmax", "")
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    with pytest.raises(UnsupportedModel) as caught:
        _prune_with(tmp_path, model, "obd", x=x)
    assert "no gradient" in caught.value.message


def test_obd_with_integer_labels_uses_them_as_cross_entropy_targets(tmp_path: Path) -> None:
    model = export_onnx(nn.Sequential(make_mlp()), tmp_path / "mlp.onnx")
    x = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)
    labels = np.arange(16) % 10
    result = _prune_with(tmp_path, model, "obd", x=x, labels=labels)
    assert result.report["calibration"]["targets"] == "dataset labels"
    assert result.report["calibration"]["labels"] is True


def test_loss_based_specs_parse_their_options_and_calibration() -> None:
    spec = parse_spec(
        {
            "sparsity": 0.5,
            "method": {"name": "sparsegpt", "blocksize": 64, "percdamp": 0.05},
            "calibration": {"dataset_id": "ds_1", "samples": 64},
        }
    )
    assert dict(spec.method.options) == {"blocksize": 64, "percdamp": 0.05}
    assert spec.calibration == CalibrationSpec(dataset_id="ds_1", samples=64)
    obd = parse_spec({"sparsity": 0.5, "method": {"name": "obd", "hessian": "hutchinson"}})
    assert obd.method.options == (("hessian", "hutchinson"), ("damp", 1.0))
    with pytest.raises(InvalidSpec) as caught:
        parse_spec({"sparsity": 0.5, "method": {"name": "sparsegpt", "percdamp": "lots"}})
    assert caught.value.field == "method.percdamp"
