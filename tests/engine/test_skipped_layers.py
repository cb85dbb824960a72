"""Tensors nothing reads, or that the method cannot score, are left as they are and listed in
the report with the reason; the rest is pruned, and the job fails only when nothing can be.
Report layers name their node and op type, and layer globs match node names (issue 17)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import helper
from torch import nn

from pruning import prune
from pruning.errors import Unsupported
from pruning.inspection import inspect_model
from pruning.models.onnx_model import OnnxModel
from pruning.models.torchscript_model import TorchScriptModel
from tests.engine.bert_factories import (
    HIDDEN,
    SEQUENCE,
    calibration_npz,
    example,
    onnx_bert,
    traced_bert,
)
from tests.engine.factories import FAST_LATENCY

METHODS: list[dict[str, Any]] = [
    {"name": "sparsegpt", "blocksize": 8},
    {"name": "wanda"},
    {"name": "magnitude"},
]
EXPORTS = {"torchscript": traced_bert, "onnx": onnx_bert}
POOLER = "pooler.dense.weight"
LAYERS = 13  # two encoder layers of q, k, v, attention output, intermediate, output; classifier


def _spec(method: dict[str, Any], **fields: Any) -> dict[str, Any]:
    spec = {
        "method": method,
        "sparsity": 0.5,
        "scope": "layerwise",
        "latency": dict(FAST_LATENCY, batch_sizes=[1]),
        **fields,
    }
    if method["name"] != "magnitude":
        spec["calibration"] = {"dataset_id": "ds_cal", "samples": 16}
    return spec


def _prune(path: Path, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    datasets = {"ds_cal": calibration_npz(path.parent / "calibration.npz")}
    return prune(path, spec, out, datasets=datasets).report


def _export(fmt: str, tmp_path: Path) -> Path:
    return EXPORTS[fmt](tmp_path / ("bert.pt" if fmt == "torchscript" else "bert.onnx"))


def _parameters(path: Path) -> dict[str, np.ndarray]:
    kind = TorchScriptModel if path.suffix == ".pt" else OnnxModel
    return {name: np.array(values) for name, values in kind.iter_parameters(path)}


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m["name"])
@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_an_unused_pooler_is_skipped_with_its_reason_and_the_rest_is_pruned(
    fmt: str, method: dict[str, Any], tmp_path: Path
) -> None:
    path = _export(fmt, tmp_path)
    result = prune(
        path,
        _spec(method),
        tmp_path / "out",
        datasets={"ds_cal": calibration_npz(tmp_path / "cal.npz")},
    )
    report = result.report
    (skipped,) = report["skipped"]
    assert skipped["tensor"] == POOLER
    assert "dead weight" in skipped["reason"]
    layers = report["sparsity"]["layers"]
    assert POOLER not in [layer["name"] for layer in layers]
    assert len(layers) == LAYERS
    assert all(abs(layer["sparsity"] - 0.5) < 0.01 for layer in layers)
    sparsity = report["sparsity"]
    assert sparsity["sparsity_over"] == "pruned tensors"
    assert (sparsity["pruned_tensors"], sparsity["skipped_tensors"]) == (LAYERS, 1)
    assert sparsity["skipped_parameters"] == HIDDEN * HIDDEN
    before, after = _parameters(path), _parameters(result.artifacts["model"])
    assert np.array_equal(before[POOLER], after[POOLER])  # left exactly as uploaded


@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_a_job_whose_every_selected_tensor_is_skipped_fails_naming_tensor_and_reason(
    fmt: str, tmp_path: Path
) -> None:
    path = _export(fmt, tmp_path)
    spec = _spec(METHODS[0], layers={"include": ["pooler*"]})
    with pytest.raises(Unsupported, match="no selected tensor can be pruned") as err:
        _prune(path, spec, tmp_path / "out")
    assert POOLER in err.value.message and "dead weight" in err.value.message
    assert err.value.field == "layers"


@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_excluding_an_unused_tensor_by_name_is_still_accepted(fmt: str, tmp_path: Path) -> None:
    path = _export(fmt, tmp_path)
    report = _prune(path, _spec(METHODS[0], layers={"exclude": ["pooler.*"]}), tmp_path / "o")
    assert report["skipped"] == []
    assert POOLER in report["sparsity"]["excluded"]
    assert report["sparsity"]["pruned_tensors"] == LAYERS


def test_onnx_layers_carry_their_node_names_and_op_types(tmp_path: Path) -> None:
    report = _prune(_export("onnx", tmp_path), _spec(METHODS[2]), tmp_path / "out")
    by_node = {layer["node"]: layer for layer in report["sparsity"]["layers"]}
    query = by_node["/encoder/layer.0/attention/self/query/MatMul"]
    assert query["op_type"] == "MatMul"
    assert query["name"].startswith("onnx::MatMul")  # what the exporter names the weight
    assert by_node["/classifier/Gemm"]["op_type"] == "Gemm"


def test_torchscript_layers_carry_module_paths_and_aten_operators(tmp_path: Path) -> None:
    report = _prune(_export("torchscript", tmp_path), _spec(METHODS[2]), tmp_path / "out")
    layers = {layer["name"]: layer for layer in report["sparsity"]["layers"]}
    query = layers["encoder.layer.0.attention.self.query.weight"]
    assert (query["node"], query["op_type"]) == (
        "encoder.layer.0.attention.self.query",
        "aten::linear",
    )


@pytest.mark.parametrize(
    ("fmt", "include", "exclude", "prefix"),
    [
        ("onnx", "/encoder/layer.1/attention/*", "*/self/key/*", "/encoder/layer.1/attention/"),
        ("torchscript", "encoder.layer.1.attention.*", "*.self.key", "encoder.layer.1.attention."),
    ],
)
def test_include_and_exclude_globs_match_node_names(
    fmt: str, include: str, exclude: str, prefix: str, tmp_path: Path
) -> None:
    spec = _spec(METHODS[2], layers={"include": [include], "exclude": [exclude]})
    report = _prune(_export(fmt, tmp_path), spec, tmp_path / "out")
    nodes = [layer["node"] for layer in report["sparsity"]["layers"]]
    assert len(nodes) == 3  # query, value and the attention output; key excluded
    assert all(node.startswith(prefix) and "key" not in node for node in nodes)
    assert len(report["sparsity"]["excluded"]) == LAYERS + 1 - 3  # the pooler too


def test_an_onnx_weight_read_only_by_a_node_no_output_needs_is_skipped(tmp_path: Path) -> None:
    path = onnx_bert(tmp_path / "bert.onnx", unused_initializer=None)
    proto = onnx.load(str(path))
    weight = np.ones((HIDDEN, HIDDEN), np.float32)
    proto.graph.initializer.append(onnx.numpy_helper.from_array(weight, "probe.weight"))
    proto.graph.node.append(helper.make_node("MatMul", ["x", "probe.weight"], ["p"], "/probe"))
    onnx.save(proto, str(path))
    report = _prune(path, _spec(METHODS[0]), tmp_path / "out")
    (skipped,) = report["skipped"]
    assert (skipped["tensor"], skipped["node"]) == ("probe.weight", "/probe")
    assert "reaches no graph output" in skipped["reason"]
    assert report["sparsity"]["pruned_tensors"] == LAYERS


class Mixer(nn.Module):
    """Mixes positions with ``weight @ x``: a weight on the left, which has no input-feature
    layout for layer-input methods (their statistics are over the columns of ``W x``)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(SEQUENCE, SEQUENCE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.weight, x)


class MixerNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mixer = Mixer()
        self.head = nn.Linear(HIDDEN, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mixer(x)).mean(dim=1)


def _mixer(fmt: str, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = MixerNet().eval()
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(net, example()), str(path))
        else:
            axes = {"x": {0: "batch"}, "y": {0: "batch"}}
            torch.onnx.export(
                net, (example(),), str(path), dynamo=False, input_names=["x"],
                output_names=["y"], dynamic_axes=axes,
            )  # fmt: skip
    return path


@pytest.mark.parametrize("method", METHODS[:2], ids=lambda m: m["name"])
@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_a_layer_the_method_cannot_score_is_skipped_and_the_rest_pruned(
    fmt: str, method: dict[str, Any], tmp_path: Path
) -> None:
    path = _mixer(fmt, tmp_path / ("mixer.pt" if fmt == "torchscript" else "mixer.onnx"))
    report = _prune(path, _spec(method), tmp_path / "out")
    (skipped,) = report["skipped"]
    assert skipped["tensor"] == "mixer.weight"
    assert skipped["reason"].startswith(f"{method['name']} cannot score it")
    (head,) = report["sparsity"]["layers"]
    assert head["node"] in ("head", "/head/MatMul")
    assert report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)


def test_magnitude_prunes_a_weight_calibrated_methods_cannot_score(tmp_path: Path) -> None:
    report = _prune(_mixer("onnx", tmp_path / "mixer.onnx"), _spec(METHODS[2]), tmp_path / "o")
    assert report["skipped"] == []
    names = [layer["name"] for layer in report["sparsity"]["layers"]]
    assert len(names) == 2 and "mixer.weight" in names


@pytest.mark.parametrize("method", ["obd", "taylor"])
@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_gradient_methods_skip_the_unused_pooler_too(fmt: str, method: str, tmp_path: Path) -> None:
    report = _prune(_export(fmt, tmp_path), _spec({"name": method}), tmp_path / "out")
    assert [s["tensor"] for s in report["skipped"]] == [POOLER]
    assert report["sparsity"]["pruned_tensors"] == LAYERS
    assert report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_inspection_lists_node_names_and_unused_weights(fmt: str, tmp_path: Path) -> None:
    info = inspect_model(_export(fmt, tmp_path))
    assert [u["tensor"] for u in info["unused"]] == [POOLER]
    nodes = [p["node"] for p in info["prunable"]]
    assert len(nodes) == LAYERS and POOLER not in [p["name"] for p in info["prunable"]]
    assert any(node.endswith("attention/self/query/MatMul") for node in nodes) or (
        "encoder.layer.0.attention.self.query" in nodes
    )
