"""Method ``taylor`` (first-order Taylor, Molchanov et al. 2019) through ``prune()``: it ranks
channels by what they do to the loss on calibration data, not by the size of their weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from pruning import prune
from pruning.errors import InvalidSpec, Unsupported
from tests.engine.factories import export_onnx, export_torchscript, load_torchscript, make_mlp
from tests.engine.structured_factories import ResidualConcatNet, export, images, make_net
from tests.engine.taylor_factories import (
    LOUD,
    features,
    loud_rows_kept,
    mlp_with_loud_but_ignored_features,
)


def _dataset(path: Path, name: str, x: np.ndarray, labels: bool = False) -> Path:
    arrays: dict[str, Any] = {name: x}
    if labels:
        arrays["labels"] = np.random.default_rng(1).integers(0, 10, len(x))
    np.savez(path, **arrays)
    return path


def _spec(method: str, **fields: Any) -> dict[str, Any]:
    return {
        "method": {"name": method},
        "sparsity": 0.5,
        "granularity": {"kind": "channel"},
        "calibration": {"dataset_id": "ds_cal", "samples": 24},
        "latency": None,
        **fields,
    }


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_taylor_removes_large_channels_the_loss_ignores_where_l1_keeps_them(
    tmp_path: Path, fmt: str
) -> None:
    net = mlp_with_loud_but_ignored_features()
    if fmt == "onnx":
        model, name, extra = export_onnx(net, tmp_path / "m.onnx"), "x", {}
    else:
        model = export_torchscript(net, tmp_path / "m.pt")
        name, extra = "input", {"input_shapes": {"input": [1, 32]}}
    datasets = {"ds_cal": _dataset(tmp_path / "cal.npz", name, features())}
    kept = {}
    for method in ("magnitude", "taylor"):
        result = prune(model, _spec(method, **extra), tmp_path / method, datasets=datasets)
        first = _first_weight(result.artifacts["model"], fmt)
        assert first.shape == (32, 32)  # half the 64 features removed, physically
        kept[method] = loud_rows_kept(first)
        structure = result.report["structure"]
        assert structure["importance"] == ("l1" if method == "magnitude" else "taylor")
        assert structure["physically_smaller"] is True

    assert kept == {"magnitude": LOUD, "taylor": 0}
    calibration = result.report["calibration"]
    assert calibration["samples"] == 24
    assert calibration["targets"] == "model predictions (the dataset has no labels)"


def _first_weight(path: Path, fmt: str) -> np.ndarray:
    if fmt == "torchscript":
        return load_torchscript(path).state_dict()["0.weight"].numpy()
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    return np.asarray(weights["0.weight"])


def test_taylor_channels_of_a_residual_concat_net_stay_a_valid_smaller_model(
    tmp_path: Path,
) -> None:
    dense = export(make_net(ResidualConcatNet), tmp_path / "net.onnx")
    data = images(16)
    labels = np.random.default_rng(2).integers(0, 10, 16)
    np.savez(tmp_path / "cal.npz", x=data, labels=labels)
    spec = _spec("taylor", calibration={"dataset_id": "ds_cal", "samples": 16})
    result = prune(dense, spec, tmp_path / "out", datasets={"ds_cal": tmp_path / "cal.npz"})

    structure = result.report["structure"]
    assert structure["parameters"]["after"] < structure["parameters"]["before"] / 2
    tied = next(g for g in structure["groups"] if "stem.0.weight" in g["layers"])
    assert "block.3.weight" in tied["layers"] and tied["kept"] == tied["channels"] // 2
    assert result.report["calibration"]["targets"] == "dataset labels"
    assert result.report["quality"]["fidelity"]["output_cosine"] is not None


def test_taylor_unstructured_and_2_4_zero_exactly_what_the_spec_asks(tmp_path: Path) -> None:
    model = export_onnx(make_mlp(), tmp_path / "m.onnx")
    datasets = {"ds_cal": _dataset(tmp_path / "cal.npz", "x", features(), labels=True)}
    unstructured = _spec("taylor", granularity={"kind": "unstructured"}, sparsity=0.7)
    nm = _spec("taylor", granularity={"kind": "n:m", "n": 2, "m": 4})
    a = prune(model, unstructured, tmp_path / "u", datasets=datasets)
    b = prune(model, nm, tmp_path / "nm", datasets=datasets)

    layers = {layer["name"]: layer for layer in a.report["sparsity"]["layers"]}
    total = sum(layer["parameters"] for layer in layers.values())
    zeros = sum(layer["parameters"] - layer["nonzeros"] for layer in layers.values())
    assert zeros == round(0.7 * total)
    for init in onnx.load(b.artifacts["model"]).graph.initializer:
        if init.name.endswith("weight"):
            values = onnx.numpy_helper.to_array(init)  # Gemm transB: out x in
            assert ((values.reshape(values.shape[0], -1, 4) == 0).sum(axis=-1) == 2).all()


def test_taylor_needs_calibration_data_and_other_loss_methods_do_not_rank_channels(
    tmp_path: Path,
) -> None:
    model = export_onnx(make_mlp(), tmp_path / "m.onnx")
    with pytest.raises(InvalidSpec, match="needs calibration data"):
        prune(model, _spec("taylor", calibration=None), tmp_path / "a")
    datasets = {"ds_cal": _dataset(tmp_path / "cal.npz", "x", features())}
    with pytest.raises(Unsupported, match="unstructured"):
        prune(model, _spec("obd"), tmp_path / "b", datasets=datasets)
