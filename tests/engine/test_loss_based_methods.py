"""OBD, SparseGPT and Wanda through ``prune()`` on real ONNX and TorchScript exports, with
calibration data from an ``.npz`` (issue 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from pruning import prune
from pruning.errors import InvalidSpec
from tests.engine.factories import (
    FAST_LATENCY,
    export_onnx,
    export_torchscript,
    load_torchscript,
    make_convnet,
    run_onnx,
)

METHODS = [
    {"name": "wanda"},
    {"name": "sparsegpt", "blocksize": 8},
    {"name": "obd"},
    {"name": "obd", "hessian": "hutchinson"},
]


def _images(samples: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((samples, 3, 16, 16)).astype(np.float32)


def _dataset(path: Path, input_name: str, labels: bool) -> Path:
    arrays: dict[str, Any] = {input_name: _images()}
    if labels:
        arrays["labels"] = np.random.default_rng(1).integers(0, 10, 24)
    np.savez(path, **arrays)
    return path


def _spec(method: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "method": method,
        "sparsity": 0.5,
        "latency": dict(FAST_LATENCY, batch_sizes=[1]),
        "calibration": {"dataset_id": "ds_cal", "samples": 16},
        **fields,
    }


def _zeros(values: np.ndarray) -> int:
    return int(values.size - np.count_nonzero(values))


@pytest.mark.parametrize("method", METHODS, ids=lambda m: "-".join(map(str, m.values())))
def test_each_method_prunes_an_onnx_convnet_to_the_asked_sparsity(
    tmp_path: Path, method: dict[str, Any]
) -> None:
    model = export_onnx(make_convnet(), tmp_path / "net.onnx")
    data = _dataset(tmp_path / "cal.npz", "x", labels=True)
    result = prune(model, _spec(method), tmp_path / "out", datasets={"ds_cal": data})
    report = result.report
    assert report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)
    assert report["calibration"]["dataset_id"] == "ds_cal"
    assert report["calibration"]["samples"] == 16
    assert report["calibration"]["calibration_s"] >= 0
    on_data = report["calibration"]["fidelity"]  # outputs compared on the data, not on noise
    assert on_data["samples"] == 16
    assert 0.0 < on_data["output_cosine"] <= 1.0 + 1e-9
    assert set(on_data["accuracy"]) == {"dense", "pruned"}
    assert run_onnx(result.artifacts["model"], _images(2)).shape == (2, 10)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: "-".join(map(str, m.values())))
def test_each_method_prunes_a_torchscript_convnet_to_the_asked_sparsity(
    tmp_path: Path, method: dict[str, Any]
) -> None:
    model = export_torchscript(make_convnet(), tmp_path / "net.pt")
    data = _dataset(tmp_path / "cal.npz", "input", labels=False)
    spec = _spec(method, scope="layerwise", input_shapes={"input": [1, 3, 16, 16]})
    result = prune(model, spec, tmp_path / "out", datasets={"ds_cal": data})
    assert result.report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)
    pruned = load_torchscript(result.artifacts["model"])
    conv = pruned.state_dict()["0.weight"].numpy()
    assert _zeros(conv) == round(0.5 * conv.size)  # exact per layer
    if method["name"] == "obd":
        assert "model predictions" in result.report["calibration"]["targets"]


def test_wanda_prunes_every_output_row_to_the_same_fraction(tmp_path: Path) -> None:
    model = export_onnx(make_convnet(), tmp_path / "net.onnx")
    data = _dataset(tmp_path / "cal.npz", "x", labels=False)
    spec = _spec({"name": "wanda"}, sparsity=0.75, scope="global")
    result = prune(model, spec, tmp_path / "out", datasets={"ds_cal": data})
    assert result.report["calibration"]["scope_applied"] == "per output row"
    from pruning.models.onnx_model import OnnxModel

    weights = dict(OnnxModel.iter_parameters(result.artifacts["model"]))
    for layer in result.report["sparsity"]["layers"]:
        rows = weights[layer["name"]].reshape(layer["shape"][0], -1)
        per_row = (rows == 0).sum(axis=1)
        assert per_row.max() - per_row.min() <= 1, layer["name"]


def _digits_mlp() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """A 64-128-10 MLP trained on scikit-learn's digits for a second (real data, offline)."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(inputs), targets).backward()
        optimizer.step()
    return net.eval(), x, y


def _accuracy(model: Path, x: np.ndarray, y: np.ndarray) -> float:
    return float((run_onnx(model, x).argmax(axis=1) == y).mean())


def test_loss_based_methods_keep_more_accuracy_than_magnitude_at_high_sparsity(
    tmp_path: Path,
) -> None:
    net, x, y = _digits_mlp()
    model = export_onnx(net, tmp_path / "digits.onnx")
    data = tmp_path / "digits.npz"
    np.savez(data, x=x[:256], labels=y[:256])
    held_out = (x[1000:], y[1000:])
    accuracy = {}
    for method in ({"name": "magnitude"}, {"name": "sparsegpt"}, {"name": "wanda"}):
        calibration = None if method["name"] == "magnitude" else {"dataset_id": "d", "samples": 256}
        spec = _spec(method, sparsity=0.8, scope="layerwise", calibration=calibration)
        out = prune(model, spec, tmp_path / method["name"], datasets={"d": data})
        accuracy[method["name"]] = _accuracy(out.artifacts["model"], *held_out)
    assert accuracy["sparsegpt"] > accuracy["magnitude"], accuracy
    assert accuracy["wanda"] > accuracy["magnitude"], accuracy


def test_a_loss_based_method_without_calibration_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    model = export_onnx(make_convnet(), tmp_path / "net.onnx")
    with pytest.raises(InvalidSpec) as caught:
        prune(model, _spec({"name": "sparsegpt"}, calibration=None), tmp_path / "out")
    assert caught.value.field == "calibration"
