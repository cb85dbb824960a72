"""Iterative and gradual schedules for structured granularities (issue 17): N:M ramps the
zeros of every group to the exact pattern, channel pruning zeroes a growing share of the
channels while training and cuts them at the end; both retrain between events and report
the ramp, on ONNX and TorchScript models trained on load_digits."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pruning import prune
from pruning.training.events import nm_zeros
from pruning.training.schedules import gradual_target, iterative_target
from tests.engine.training_factories import (
    digits_datasets,
    export_digits,
    held_out_accuracy,
    make_digits_convnet,
    make_digits_mlp,
    retrain_spec,
    trained,
    weights_of,
)

SCHEDULES = [{"kind": "gradual", "steps": 3}, {"kind": "iterative", "rounds": 3}]
FORMATS = [".onnx", ".pt"]
LAYERS = ["0.weight", "3.weight", "7.weight", "9.weight"]  # the digits convnet's conv, linear


def test_nm_zeros_per_group_ramp_to_exactly_n() -> None:
    gradual = [nm_zeros(gradual_target(k, 4, 0.5, 0.0, 3.0), 2, 4) for k in range(5)]
    iterative = [nm_zeros(iterative_target(r, 2, 0.5), 2, 4) for r in (1, 2)]
    assert gradual == [0, 1, 2, 2, 2]
    assert iterative == [1, 2]
    assert nm_zeros(0.75, 3, 4) == 3
    assert nm_zeros(3 / 8 - 1e-12, 3, 8) == 3  # a float just under n/m still gives n


def _mlp_job(tmp_path: Path, suffix: str, schedule: dict[str, Any], **extra: Any) -> Any:
    model = export_digits(trained(make_digits_mlp(), epochs=3), tmp_path / f"mlp{suffix}")
    spec = retrain_spec(0.5, schedule, epochs=3, **extra)
    spec["granularity"] = {"kind": "n:m", "n": 2, "m": 4}
    return prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))


def _zeros_per_group(result: Any) -> dict[str, np.ndarray]:
    """Zeros in each group of 4 inputs of every pruned weight (Linear and Gemm with
    transB=1 both store it [out, in])."""
    names = [layer["name"] for layer in result.report["sparsity"]["layers"]]
    found = weights_of(result.artifacts["model"], names)
    return {n: (w.reshape(w.shape[0], -1, 4) == 0).sum(axis=-1) for n, w in found.items()}


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s["kind"])
def test_nm_schedule_ramps_zeros_per_group_and_ends_exactly_nm(
    tmp_path: Path, suffix: str, schedule: dict[str, Any]
) -> None:
    result = _mlp_job(tmp_path, suffix, schedule)
    groups = _zeros_per_group(result)
    assert sorted(groups) == ["1.weight", "3.weight"]
    assert all((zeros == 2).all() for zeros in groups.values())
    structure = result.report["structure"]
    assert (structure["kind"], structure["n"], structure["m"]) == ("n:m", 2, 4)
    assert all(layer["pruned"] for layer in structure["layers"])
    events = result.report["training"]["pruning_events"]
    ramp = [e["zeros_per_group"] for e in events]
    assert ramp[0] < 2 and ramp[-1] == 2
    assert all(a <= b for a, b in itertools.pairwise(ramp))
    assert [e["pattern"] for e in events][-1] == "2:4"
    assert [e["sparsity"] for e in events] == pytest.approx([z / 4 for z in ramp])
    metric = result.report["quality"]["metric"]
    assert metric["pruned"] == held_out_accuracy(result.artifacts["model"])
    assert metric["pruned"] > 0.8


def test_nm_schedule_works_with_a_calibrated_method(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=3), tmp_path / "mlp.onnx")
    spec = retrain_spec(0.5, {"kind": "gradual", "steps": 2}, epochs=2)
    spec.update(
        granularity={"kind": "n:m", "n": 2, "m": 4},
        method={"name": "wanda"},
        calibration={"dataset_id": "ds_train", "samples": 64},
    )
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))
    ramp = [e["zeros_per_group"] for e in result.report["training"]["pruning_events"]]
    assert ramp == [0, 2, 2]
    assert all((zeros == 2).all() for zeros in _zeros_per_group(result).values())


def _convnet_job(tmp_path: Path, suffix: str, schedule: dict[str, Any], **extra: Any) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = export_digits(trained(make_digits_convnet(), epochs=2), tmp_path / f"net{suffix}")
    spec = retrain_spec(0.5, schedule, epochs=3)
    spec.update(granularity={"kind": "channel"}, **extra)
    return prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s["kind"])
def test_channel_schedule_zeroes_more_channels_each_event_then_cuts_them(
    tmp_path: Path, suffix: str, schedule: dict[str, Any]
) -> None:
    result = _convnet_job(tmp_path, suffix, schedule)
    artifact = result.artifacts["model"]
    shapes = {n: w.shape for n, w in weights_of(artifact, LAYERS).items()}
    assert [shapes[n][0] for n in LAYERS] == [8, 16, 32, 10]  # half of 16, 32, 64; not logits
    assert shapes["9.weight"][1] == 32
    structure = result.report["structure"]
    assert structure["physically_smaller"] is True
    assert structure["parameters"]["after"] < structure["parameters"]["before"]
    events = result.report["training"]["pruning_events"]
    fractions = [e["channel_sparsity"] for e in events]
    zeroed = [e["channels"]["zeroed"] for e in events]
    assert fractions[-1] == 0.5 and fractions[0] < 0.5
    assert all(a <= b for a, b in itertools.pairwise(fractions))
    assert all(a <= b for a, b in itertools.pairwise(zeroed))
    assert zeroed[0] < zeroed[-1] == 8 + 16 + 32
    assert {e["channels"]["total"] for e in events} == {16 + 32 + 64}
    metric = result.report["quality"]["metric"]
    assert metric["pruned"] == held_out_accuracy(artifact)
    assert metric["pruned"] > 0.8


def test_a_channel_schedule_cuts_only_channels_that_reached_nothing(tmp_path: Path) -> None:
    """The masked model trained is the model cut: the cut moves no output (one-shot
    cutting of live channels does)."""
    scheduled = _convnet_job(tmp_path / "gradual", ".onnx", {"kind": "gradual", "steps": 2})
    one_shot = _convnet_job(tmp_path / "one_shot", ".onnx", {"kind": "one_shot"})
    assert scheduled.report["structure"]["output_change"] < 1e-4
    assert one_shot.report["structure"]["output_change"] > 1e-2


def test_channel_schedule_works_with_taylor_ranking(tmp_path: Path) -> None:
    calibration = {"dataset_id": "ds_train", "samples": 64}
    result = _convnet_job(
        tmp_path,
        ".onnx",
        {"kind": "iterative", "rounds": 2},
        method={"name": "taylor"},
        calibration=calibration,
    )
    assert result.report["structure"]["importance"] == "taylor"
    assert result.report["calibration"]["samples"] == 64
    zeroed = [e["channels"]["zeroed"] for e in result.report["training"]["pruning_events"]]
    assert zeroed[0] < zeroed[-1] == 56


@pytest.mark.parametrize("suffix", FORMATS)
def test_channels_read_by_a_layer_left_out_stay_dense_and_say_why(
    tmp_path: Path, suffix: str
) -> None:
    """Training holds only selected weights at zero, so a channel read by an excluded layer
    could not be silenced before the cut."""
    layers = {"exclude": ["9.weight"]}
    result = _convnet_job(tmp_path, suffix, {"kind": "gradual", "steps": 2}, layers=layers)
    groups = {g["layers"][0]: g for g in result.report["structure"]["groups"]}
    assert groups["7.weight"]["pruned"] is False
    assert "'9.weight' reads these channels" in groups["7.weight"]["reason"]
    assert groups["0.weight"]["pruned"] and groups["3.weight"]["pruned"]
    shapes = {n: w.shape for n, w in weights_of(result.artifacts["model"], LAYERS).items()}
    assert [shapes[n][0] for n in LAYERS] == [8, 16, 64, 10]
    if suffix == ".onnx":
        assert result.report["structure"]["output_change"] < 1e-4
