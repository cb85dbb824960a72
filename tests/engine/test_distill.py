"""Distillation after a one-shot pass (issue 15): the pruned model, its zeros fixed, trained
on unlabeled calibration samples to match the dense model's pruned-layer outputs and output;
on ONNX (integer token inputs, through onnx2pytorch) and TorchScript (through graph taps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from api_schemas import Report
from pruning import InvalidSpec, prune
from tests.engine.distill_factories import (
    export_token_onnx,
    export_token_torchscript,
    token_calibration,
)
from tests.engine.training_factories import (
    digits,
    export_digits,
    input_name,
    make_digits_convnet,
    trained,
)

LINEARS = 6  # query, key, value, output, up, down


def _spec(**fields: Any) -> dict[str, Any]:
    return {
        "method": {"name": "magnitude"},
        "sparsity": 0.5,
        "scope": "layerwise",
        "latency": None,
        "calibration": {"dataset_id": "calibration", "samples": 32},
        "distill": {"steps": 40, "lr": 3e-3, "batch_size": 8},
        **fields,
    }


@pytest.fixture(params=["onnx", "torchscript"])
def model(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "onnx":
        return export_token_onnx(tmp_path / "encoder.onnx")
    return export_token_torchscript(tmp_path / "encoder.pt")


def test_distillation_brings_the_pruned_output_closer_to_the_dense_one(
    model: Path, tmp_path: Path
) -> None:
    datasets = {"calibration": token_calibration(tmp_path / "calibration.npz")}
    report = prune(model, _spec(), tmp_path / "out", datasets=datasets).report
    block = report["distill"]
    typed = Report.model_validate(report).distill  # the schema clients are made from
    assert typed is not None and typed.model_dump(mode="json") == block
    assert block["layers"] == LINEARS and block["unmatched"] == []
    assert block["steps"] == 40 and block["samples"] == 32
    assert block["loss_after"] < block["loss_before"]
    assert block["fidelity_after"] > block["fidelity_before"]
    # The saved model is the distilled one: the report's own calibration fidelity says so.
    fidelity = report["quality"]["fidelity"]
    assert fidelity["source"] == "calibration data"
    assert fidelity["output_cosine"] == pytest.approx(block["fidelity_after"], abs=1e-4)


def test_distillation_keeps_every_layers_zeros(model: Path, tmp_path: Path) -> None:
    datasets = {"calibration": token_calibration(tmp_path / "calibration.npz")}
    report = prune(model, _spec(), tmp_path / "out", datasets=datasets).report
    for layer in report["sparsity"]["layers"]:
        zeros = layer["parameters"] - layer["nonzeros"]
        assert abs(zeros - layer["parameters"] * 0.5) <= 0.5, layer


def test_output_only_distillation_matches_no_layer(tmp_path: Path) -> None:
    model = export_token_onnx(tmp_path / "encoder.onnx")
    datasets = {"calibration": token_calibration(tmp_path / "calibration.npz")}
    spec = _spec(distill={"steps": 5, "layerwise": 0.0})
    report = prune(model, spec, tmp_path / "out", datasets=datasets).report
    assert report["distill"]["weights"] == {"layerwise": 0.0, "output": 1.0}
    assert report["timings"]["retrain_s"] > 0.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"calibration": None}, "calibration"),
        (
            {
                "retrain": {"dataset_id": "calibration", "loss": "distill"},
                "schedule": {"kind": "one_shot"},
            },
            "distill",
        ),
        ({"sweep": [0.3, 0.5], "evaluation": {"dataset_id": "calibration"}}, "distill"),
        ({"distill": {"layerwise": 0, "output": 0}}, "distill.output"),
        ({"distill": {"steps": 0}}, "distill.steps"),
        ({"distill": {"epochs": 3}}, "distill.epochs"),
    ],
)
def test_a_distillation_that_cannot_run_is_refused_at_its_field(
    change: dict[str, Any], field: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidSpec) as err:
        prune(tmp_path / "unused.onnx", _spec(**change), tmp_path / "out")
    assert err.value.field == field


def test_the_taps_of_a_torchscript_graph_carry_gradients(tmp_path: Path) -> None:
    from pruning.models import open_model
    from pruning.training.taps import taps
    from pruning.training.trainable import trainable

    model = open_model(export_token_torchscript(tmp_path / "encoder.pt"), None)
    selected = model.prunable()
    view = trainable(model, selected)
    tap = taps(model, view, [t.name for t in selected])
    ids = torch.zeros(2, 6, dtype=torch.int64)
    out, layers = tap(view.module, [ids, torch.ones_like(ids)])
    torch.stack([o.sum() for outs in layers.values() for o in outs]).sum().backward()  # type: ignore[no-untyped-call]
    assert out.shape == (2, 16)
    assert all(view.weights[name].tensor.grad is not None for name in layers)
    assert np.isfinite(float(out.sum()))


def test_onnx_and_torchscript_exports_of_one_convnet_distill_alike(tmp_path: Path) -> None:
    """Convolutions are tapped too (a traced graph's aten::_convolution), and both formats
    train the same function from the same zeros: the same losses and fidelities."""
    net = trained(make_digits_convnet(), epochs=2)
    blocks = []
    for suffix in (".onnx", ".pt"):
        model = export_digits(net, tmp_path / f"cnn{suffix}")
        data = tmp_path / f"calibration{suffix}.npz"
        np.savez(data, **{input_name(model): digits()[0][:64]})  # type: ignore[arg-type]
        spec = _spec(sparsity=0.7, distill={"steps": 20})
        spec["calibration"]["samples"] = 64
        out = tmp_path / f"out{suffix}"
        blocks.append(prune(model, spec, out, datasets={"calibration": data}).report["distill"])
    onnx_block, script_block = blocks
    assert onnx_block["layers"] == script_block["layers"] == 4  # two convs, two linears
    assert onnx_block["fidelity_after"] > onnx_block["fidelity_before"]
    for key in ("loss_before", "loss_after", "fidelity_before", "fidelity_after"):
        assert onnx_block[key] == pytest.approx(script_block[key], rel=1e-3), key
