"""Structured granularities through ``prune()``: the spec, the saved artifacts and the report's
``structure`` block and latency explanation."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pruning import prune
from pruning.errors import InvalidSpec
from pruning.spec import parse_spec
from tests.engine.factories import (
    FAST_LATENCY,
    export_torchscript,
    load_torchscript,
    make_convnet,
    run_onnx,
)
from tests.engine.structured_factories import ResidualConcatNet, export, images, make_net

CHANNEL = {"sparsity": 0.5, "granularity": {"kind": "channel"}, "latency": FAST_LATENCY}


def test_channel_job_returns_a_smaller_onnx_model_and_says_what_it_cut(tmp_path: Path) -> None:
    dense = export(make_net(ResidualConcatNet), tmp_path / "net.onnx")
    result = prune(dense, CHANNEL, tmp_path / "out")

    model = result.artifacts["model"]
    assert model.stat().st_size < dense.stat().st_size / 2
    assert run_onnx(model, images(3)).shape == (3, 10)
    structure = result.report["structure"]
    assert structure["physically_smaller"] is True
    assert structure["parameters"]["after"] < structure["parameters"]["before"] / 2
    assert any(g["reason"] and "model output" in g["reason"] for g in structure["groups"])
    latency = result.report["latency"]
    assert "smaller dense matrix" in latency["explanation"]
    assert {r["batch_size"] for r in latency["results"]} == {1, 4}
    assert result.report["quality"]["fidelity"]["output_cosine"] is not None


def test_channel_job_shrinks_a_torchscript_sequential_chain(tmp_path: Path) -> None:
    model = export_torchscript(make_convnet(), tmp_path / "c.pt")  # Conv, BN, Conv, pool, FC
    spec = {**CHANNEL, "input_shapes": {"input": [1, 3, 16, 16]}}
    result = prune(model, spec, tmp_path / "out")

    pruned = load_torchscript(result.artifacts["model"])
    shapes = {name: tuple(p.shape) for name, p in pruned.state_dict().items()}
    assert shapes["0.weight"] == (4, 3, 3, 3) and shapes["1.running_var"] == (4,)
    assert shapes["3.weight"] == (8, 4, 3, 3) and shapes["7.weight"] == (10, 8)
    x = torch.from_numpy(images(2, channels=3, size=16))
    assert pruned(x).shape == (2, 10)
    assert result.report["structure"]["physically_smaller"] is True
    assert "smaller dense matrix" in result.report["latency"]["explanation"]


def test_channel_job_on_other_torchscript_zeroes_channels_and_expects_no_speedup(
    tmp_path: Path,
) -> None:
    net = make_net(ResidualConcatNet)
    path = tmp_path / "r.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit deprecation notices
        torch.jit.trace(net, torch.from_numpy(images(1))).save(str(path))
    spec = {**CHANNEL, "input_shapes": {"x": [1, 3, 8, 8]}}
    result = prune(path, spec, tmp_path / "out")

    stem = load_torchscript(result.artifacts["model"]).state_dict()["stem.0.weight"].numpy()
    assert stem.shape == (16, 3, 3, 3)  # same shapes: zeroed, not removed
    assert int((np.abs(stem).reshape(16, -1).sum(axis=1) == 0).sum()) == 8
    assert result.report["structure"]["physically_smaller"] is False
    assert "no speedup is expected" in result.report["latency"]["explanation"]


def test_l2_importance_is_accepted_and_reported(tmp_path: Path) -> None:
    dense = export(make_net(ResidualConcatNet), tmp_path / "net.onnx")
    spec = {**CHANNEL, "granularity": {"kind": "channel", "importance": "l2"}, "latency": None}
    assert prune(dense, spec, tmp_path / "out").report["structure"]["importance"] == "l2"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"sparsity": 0.4, "granularity": {"kind": "n:m", "n": 2, "m": 4}}, "sparsity"),
        ({"sparsity": 0.5, "granularity": {"kind": "n:m", "n": 4, "m": 4}}, "granularity"),
        (
            {"sparsity": 0.5, "granularity": {"kind": "channel", "importance": "taylor"}},
            "granularity.importance",
        ),
        ({"sparsity": 0.5, "granularity": {"kind": "blocks"}}, "granularity.kind"),
    ],
)
def test_structured_specs_that_cannot_work_are_refused_naming_the_field(
    raw: dict, field: str
) -> None:
    with pytest.raises(InvalidSpec) as err:
        parse_spec(raw)
    assert err.value.field == field


def test_overrides_are_refused_for_structured_granularity(tmp_path: Path) -> None:
    dense = export(make_net(ResidualConcatNet), tmp_path / "net.onnx")
    spec = {**CHANNEL, "layers": {"overrides": {"stem*": 0.2}}}
    with pytest.raises(InvalidSpec) as err:
        prune(dense, spec, tmp_path / "out")
    assert err.value.field == "layers.overrides"
