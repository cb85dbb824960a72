"""Gradual and iterative pruning with retraining through ``prune()`` on real ONNX and
TorchScript exports of load_digits models (issue 4): the artifact is the uploaded model with
trained values, its zeros are the target, and the report's accuracy is the artifact's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pruning import prune
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


def _graph_without_values(path: Path) -> dict[str, Any]:
    model = onnx.load(str(path))
    graph = model.graph
    return {
        "nodes": [n.SerializeToString() for n in graph.node],
        "inputs": [i.SerializeToString() for i in graph.input],
        "outputs": [o.SerializeToString() for o in graph.output],
        "opset": [(o.domain, o.version) for o in model.opset_import],
        "initializers": [(i.name, list(i.dims), i.data_type) for i in graph.initializer],
    }


def test_gradual_retraining_writes_trained_values_into_the_uploaded_onnx_graph(
    tmp_path: Path,
) -> None:
    model = export_digits(trained(make_digits_convnet(), epochs=3), tmp_path / "net.onnx")
    events: list[tuple[str, float, dict[str, Any] | None]] = []
    result = prune(
        model,
        retrain_spec(0.8, {"kind": "gradual", "steps": 4}, epochs=4),
        tmp_path / "out",
        progress=lambda stage, fraction, info: events.append((stage, fraction, info)),
        datasets=digits_datasets(tmp_path, model),
    )
    artifact = result.artifacts["model"]
    assert _graph_without_values(artifact) == _graph_without_values(model)
    before = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(model)).graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(artifact)).graph.initializer}
    changed = [n for n in before if not np.array_equal(before[n], after[n])]
    assert {n for n in before if n.endswith("bias")} <= set(changed)  # biases trained too
    report = result.report
    assert report["sparsity"]["achieved"] == pytest.approx(0.8, abs=1e-4)
    metric = report["quality"]["metric"]
    assert metric["pruned"] == held_out_accuracy(artifact)
    assert metric["dense"] == held_out_accuracy(model)
    assert metric["in_sample"] is False
    assert report["timings"]["retrain_s"] > 0
    training = report["training"]
    assert [e["sparsity"] for e in training["pruning_events"]][-1] == pytest.approx(0.8, abs=1e-4)
    assert len(training["pruning_events"]) == 5
    epochs = [p for p in training["curve"] if "event" not in p]
    assert [p["epoch"] for p in epochs] == [1, 2, 3, 4]
    retrain = [(f, info) for stage, f, info in events if stage == "retrain"]
    assert [info["epoch"] for _, info in retrain if info] == [1, 2, 3, 4]
    assert all(info and info["keep"] and "loss" in info for _, info in retrain)
    fractions = [f for _, f, _ in events]
    assert fractions == sorted(fractions)


def test_iterative_retraining_of_torchscript_prunes_in_rounds_to_the_exact_target(
    tmp_path: Path,
) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=5), tmp_path / "mlp.pt")
    result = prune(
        model,
        retrain_spec(0.9, {"kind": "iterative", "rounds": 2}, epochs=4, optimizer="sgd", lr=0.05),
        tmp_path / "out",
        datasets=digits_datasets(tmp_path, model),
    )
    artifact = result.artifacts["model"]
    report = result.report
    rounds = [e["sparsity"] for e in report["training"]["pruning_events"]]
    assert rounds == pytest.approx([1 - 0.1**0.5, 0.9], abs=1e-3)
    assert [e["epoch"] for e in report["training"]["pruning_events"]] == [0, 2]
    weights = weights_of(artifact, ["1.weight", "3.weight"])
    zeros = sum(int(np.sum(w == 0)) for w in weights.values())
    assert zeros == round(0.9 * sum(w.size for w in weights.values()))
    assert report["quality"]["metric"]["pruned"] == held_out_accuracy(artifact)
    assert report["training"]["batch_norm"] == "no batch norm"


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_retraining_recovers_accuracy_that_one_shot_pruning_loses(
    tmp_path: Path, suffix: str
) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=5), tmp_path / f"mlp{suffix}")
    datasets = digits_datasets(tmp_path, model)
    one_shot = retrain_spec(0.95, {"kind": "one_shot"})
    one_shot["retrain"] = None
    plain = prune(model, one_shot, tmp_path / "plain", datasets=datasets)
    gradual = prune(
        model,
        retrain_spec(0.95, {"kind": "gradual", "steps": 5}, epochs=6, lr=3e-3),
        tmp_path / "gradual",
        datasets=datasets,
    )
    plain_accuracy = plain.report["quality"]["metric"]["pruned"]
    retrained = gradual.report["quality"]["metric"]["pruned"]
    assert retrained == held_out_accuracy(gradual.artifacts["model"])
    assert retrained > plain_accuracy + 0.1
    assert gradual.report["sparsity"]["achieved"] == pytest.approx(0.95, abs=1e-4)
