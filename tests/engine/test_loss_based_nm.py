"""OBD, Wanda and SparseGPT with n:m granularity (issue 3): exactly n zeros in every group of
m consecutive inputs of each output row, on ONNX and TorchScript, in the layout each operator
stores its weight (the convention of ``pruning/masks/nm.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from pruning import prune
from pruning.errors import InvalidSpec, Unsupported
from pruning.methods.sparsegpt import sparsegpt_layer
from tests.engine.factories import (
    FAST_LATENCY,
    export_onnx,
    export_torchscript,
    load_torchscript,
    make_convnet,
)
from tests.engine.structured_factories import matmul_mlp

METHODS = [
    {"name": "wanda"},
    {"name": "sparsegpt", "blocksize": 8},
    {"name": "obd"},
]


def _ids(method: dict[str, Any]) -> str:
    return str(method["name"])


def _spec(method: dict[str, Any], n: int = 2, m: int = 4, **fields: Any) -> dict[str, Any]:
    return {
        "method": method,
        "sparsity": n / m,
        "granularity": {"kind": "n:m", "n": n, "m": m},
        "latency": dict(FAST_LATENCY, batch_sizes=[1]),
        "calibration": {"dataset_id": "ds_cal", "samples": 16},
        **fields,
    }


def _dataset(path: Path, name: str, shape: tuple[int, ...]) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    np.savez(path, **{name: rng.standard_normal((16, *shape)).astype(np.float32)})
    return {"ds_cal": path}


def _zeros_per_group(matrix: np.ndarray, m: int) -> np.ndarray:
    """Zeros in each run of m along the last axis of an (outputs, inputs) matrix."""
    return (matrix.reshape(matrix.shape[0], -1, m) == 0).sum(axis=-1)


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _check_convnet(weights: dict[str, np.ndarray], report: dict[str, Any], n: int, m: int) -> None:
    """Every pruned layer has exactly n zeros per group; the 27-input first conv is named."""
    nm = report["calibration"]["nm"]
    assert (nm["n"], nm["m"]) == (n, m)
    dense = {layer["name"]: layer["reason"] for layer in nm["layers_left_dense"]}
    assert len(dense) == 1 and "27 is not a multiple of m=4" in next(iter(dense.values()))
    layers = report["sparsity"]["layers"]
    assert len(layers) == 3
    for layer in layers:
        matrix = weights[layer["name"]].reshape(layer["shape"][0], -1)
        if layer["name"] in dense:
            assert np.count_nonzero(matrix) == matrix.size
        else:
            assert (_zeros_per_group(matrix, m) == n).all(), layer["name"]


@pytest.mark.parametrize("method", METHODS, ids=_ids)
def test_each_method_writes_exactly_2_of_4_into_an_onnx_convnet(
    tmp_path: Path, method: dict[str, Any]
) -> None:
    model = export_onnx(make_convnet(), tmp_path / "net.onnx")
    data = _dataset(tmp_path / "cal.npz", "x", (3, 16, 16))
    result = prune(model, _spec(method), tmp_path / "out", datasets=data)
    _check_convnet(_initializers(result.artifacts["model"]), result.report, 2, 4)


@pytest.mark.parametrize("method", METHODS, ids=_ids)
def test_each_method_writes_exactly_2_of_4_into_a_torchscript_convnet(
    tmp_path: Path, method: dict[str, Any]
) -> None:
    model = export_torchscript(make_convnet(), tmp_path / "net.pt")
    data = _dataset(tmp_path / "cal.npz", "input", (3, 16, 16))
    spec = _spec(method, input_shapes={"input": [1, 3, 16, 16]})
    result = prune(model, spec, tmp_path / "out", datasets=data)
    state = load_torchscript(result.artifacts["model"]).state_dict()
    weights = {name: value.numpy() for name, value in state.items()}
    _check_convnet(weights, result.report, 2, 4)


@pytest.mark.parametrize("method", METHODS, ids=_ids)
def test_in_by_out_matmul_weights_are_grouped_down_their_columns(
    tmp_path: Path, method: dict[str, Any]
) -> None:
    model = matmul_mlp(tmp_path / "mm.onnx")  # w1 is (12 in, 20 out), w2 (20 in, 5 out)
    data = _dataset(tmp_path / "cal.npz", "x", (12,))
    result = prune(model, _spec(method, 1, 4), tmp_path / "out", datasets=data)
    weights = _initializers(result.artifacts["model"])
    assert (_zeros_per_group(weights["w1"].T, 4) == 1).all()
    assert (_zeros_per_group(weights["w2"].T, 4) == 1).all()
    assert result.report["calibration"]["nm"]["layers_left_dense"] == []


def _correlated_inputs(tokens: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Features that are mixtures of a few factors (plus noise), as activations of a trained
    network are: the OBS update can move a pruned weight's work onto correlated inputs."""
    generator = torch.Generator().manual_seed(seed)
    factors = torch.randn(tokens, cols // 4, generator=generator)
    noise = 0.1 * torch.randn(tokens, cols, generator=generator)
    return factors @ torch.randn(cols // 4, cols, generator=generator) + noise


def test_sparsegpt_n_m_is_exact_with_dead_inputs_and_blocks_not_a_multiple_of_m() -> None:
    x = _correlated_inputs(256, 32)
    x[:, 4:7] = 0.0  # three always-zero inputs in one group of four
    weights = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
    hessian = 2.0 * x.T @ x / x.shape[0]
    pruned = sparsegpt_layer(weights, hessian, 0.5, blocksize=6, percdamp=0.01, nm=(2, 4))
    assert (_zeros_per_group(pruned.numpy(), 4) == 2).all()


def _magnitude_2_4(weights: torch.Tensor) -> torch.Tensor:
    groups = weights.reshape(weights.shape[0], -1, 4)
    lowest = groups.abs().argsort(dim=-1)[..., :2]
    return groups.scatter(-1, lowest, 0.0).reshape(weights.shape)


def test_sparsegpt_2_4_reconstructs_the_layer_output_better_than_magnitude_2_4() -> None:
    x = _correlated_inputs(512, 64)
    weights = torch.randn(16, 64, generator=torch.Generator().manual_seed(2))
    hessian = 2.0 * x.T @ x / x.shape[0]
    pruned = sparsegpt_layer(weights, hessian, 0.5, blocksize=16, percdamp=0.01, nm=(2, 4))
    error = torch.linalg.norm(x @ (weights - pruned).T)
    baseline = torch.linalg.norm(x @ (weights - _magnitude_2_4(weights)).T)
    assert error < 0.7 * baseline, (float(error), float(baseline))


def test_channel_granularity_with_a_calibrated_method_is_still_refused(
    tmp_path: Path,
) -> None:
    model = export_onnx(make_convnet(), tmp_path / "net.onnx")
    data = _dataset(tmp_path / "cal.npz", "x", (3, 16, 16))
    spec = _spec({"name": "wanda"}, granularity={"kind": "channel"}, sparsity=0.5)
    with pytest.raises(Unsupported, match="channel") as caught:
        prune(model, spec, tmp_path / "out", datasets=data)
    assert caught.value.field in ("granularity", "method.name")


def test_n_m_with_layer_overrides_is_refused_naming_the_field(tmp_path: Path) -> None:
    model = export_onnx(make_convnet(), tmp_path / "net.onnx")
    data = _dataset(tmp_path / "cal.npz", "x", (3, 16, 16))
    spec = _spec({"name": "sparsegpt"}, layers={"overrides": {"*": 0.5}})
    with pytest.raises(InvalidSpec) as caught:
        prune(model, spec, tmp_path / "out", datasets=data)
    assert caught.value.field == "layers.overrides"
