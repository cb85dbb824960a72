"""prune() on TorchScript: parameters written in place, archive saved, loads and runs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from pruning import InvalidSpec, prune
from tests.engine.factories import (
    export_torchscript,
    fast_spec,
    load_torchscript,
    make_convnet,
    make_mlp,
)


def test_pruned_torchscript_loads_and_runs(tmp_path: Path) -> None:
    path = export_torchscript(make_convnet(), tmp_path / "convnet.pt")
    result = prune(path, fast_spec(), tmp_path / "out")
    module = load_torchscript(result.artifacts["model"])
    assert module(torch.randn(5, 3, 16, 16)).shape == (5, 10)
    params = dict(module.named_parameters())
    layers = result.report["sparsity"]["layers"]
    assert [x["name"] for x in layers] == ["0.weight", "3.weight", "7.weight"]
    for layer in layers:
        assert int(torch.count_nonzero(params[layer["name"]])) == layer["nonzeros"]
    dense = dict(load_torchscript(path).named_parameters())
    for name in ("0.bias", "1.weight", "1.bias"):  # biases and BatchNorm untouched
        assert torch.equal(params[name], dense[name])
    assert result.report["latency"]["runtime"].startswith("torch ")


def test_traced_batch_is_an_example_not_a_limit(tmp_path: Path) -> None:
    path = export_torchscript(make_mlp(), tmp_path / "mlp.pt")  # traced with batch 2
    report = prune(path, fast_spec(), tmp_path / "out").report
    assert [r["batch_size"] for r in report["latency"]["results"]] == [1, 4]
    assert report["quality"]["fidelity"]["inputs"]["samples"] == 16


def test_scripted_model_needs_input_shapes(tmp_path: Path) -> None:
    path = export_torchscript(make_mlp(), tmp_path / "mlp.pt", how="script")
    with pytest.raises(InvalidSpec, match="input_shapes") as err:
        prune(path, fast_spec(), tmp_path / "out")
    assert err.value.code == "invalid_spec"
    report = prune(path, fast_spec(input_shapes={"input": [1, 32]}), tmp_path / "ok").report
    assert report["latency"]["inputs"]["source"] == "input_shapes"
    assert report["sparsity"]["achieved"] == pytest.approx(0.8, abs=1 / 2688)


def test_extra_files_survive_pruning(tmp_path: Path) -> None:
    declared = [{"name": "input", "dtype": "float32", "shape": ["batch", 32]}]
    path = export_torchscript(make_mlp(), tmp_path / "mlp.pt", how="script", inputs_json=declared)
    result = prune(path, fast_spec(), tmp_path / "out")
    with zipfile.ZipFile(result.artifacts["model"]) as archive:
        names = archive.namelist()
    assert any(n.endswith("extra/shears/inputs.json") for n in names)


def test_random_method_on_torchscript_reaches_the_target(tmp_path: Path) -> None:
    path = export_torchscript(make_convnet(), tmp_path / "c.pt")
    spec = fast_spec(method={"name": "random", "seed": 1}, scope="layerwise", latency=None)
    report = prune(path, spec, tmp_path / "out").report
    for layer in report["sparsity"]["layers"]:
        assert abs(layer["parameters"] * 0.8 - (layer["parameters"] - layer["nonzeros"])) <= 0.5
    assert report["latency"] is None
    assert report["engine"]["method"] == "random"
