"""Retraining details a user relies on: batch norm statistics, n:m patterns kept exact,
distillation without labels, regrowth, validation, and fixed masks under Adam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from pruning import DataMismatch, prune
from pruning.training.masks import FixedMasks
from tests.engine.factories import run_onnx
from tests.engine.training_factories import (
    digits,
    digits_datasets,
    export_digits,
    held_out_accuracy,
    make_digits_convnet,
    make_digits_mlp,
    retrain_spec,
    trained,
    weights_of,
)


def test_batch_norm_statistics_are_re_estimated_on_the_training_data(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_convnet(), epochs=2), tmp_path / "net.onnx")
    spec = retrain_spec(0.7, {"kind": "one_shot"}, epochs=2, batch_size=70)
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))
    assert "re-estimated" in result.report["training"]["batch_norm"]
    # The statistics must describe the pruned, trained model: the mean over the training
    # images of what reaches the batch norm in the artifact itself.
    artifact = onnx.load(str(result.artifacts["model"]))
    norm = next(n for n in artifact.graph.node if n.op_type == "BatchNormalization")
    inits = {i.name: numpy_helper.to_array(i) for i in artifact.graph.initializer}
    artifact.graph.output.append(onnx.helper.make_empty_tensor_value_info(norm.input[0]))
    probe = tmp_path / "probe.onnx"
    onnx.save(artifact, str(probe))
    session = ort.InferenceSession(str(probe), providers=["CPUExecutionProvider"])
    images = digits()[0][:1400]
    reaching = session.run([norm.input[0]], {"x": images})[0]
    np.testing.assert_allclose(inits[norm.input[3]], reaching.mean(axis=(0, 2, 3)), atol=1e-4)


def test_nm_pattern_stays_exact_through_retraining(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=3), tmp_path / "mlp.pt")
    spec = retrain_spec(0.5, {"kind": "one_shot"}, epochs=2)
    spec["granularity"] = {"kind": "n:m", "n": 2, "m": 4}
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))
    for name, w in weights_of(result.artifacts["model"], ["1.weight", "3.weight"]).items():
        zeros_per_group = (w.reshape(w.shape[0], -1, 4) == 0).sum(axis=-1)
        assert (zeros_per_group >= 2).all(), name
    assert result.report["structure"]["kind"] == "n:m"
    assert result.report["quality"]["metric"]["pruned"] == held_out_accuracy(
        result.artifacts["model"]
    )


def test_distillation_trains_without_labels(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=5), tmp_path / "mlp.onnx")
    # One epoch follows the last cut: at a constant rate it recovers more than under the
    # default's cosine decay, which halves that epoch's mean rate (bench/distill.py measures
    # the recipes over 10 epochs).
    spec = retrain_spec(
        0.9,
        {"kind": "gradual", "steps": 3},
        epochs=4,
        loss="distill",
        lr=3e-3,
        lr_schedule="constant",
    )
    datasets = digits_datasets(tmp_path, model, labels=False)
    result = prune(model, spec, tmp_path / "out", datasets=datasets)
    training = result.report["training"]
    assert training["loss"] == "distill"
    metric = result.report["quality"]["metric"]
    assert metric["pruned"] == held_out_accuracy(result.artifacts["model"])
    assert metric["pruned"] > metric["dense"] - 0.1


def test_cross_entropy_without_labels_is_refused_naming_labels(tmp_path: Path) -> None:
    model = export_digits(make_digits_mlp(), tmp_path / "mlp.onnx")
    datasets = digits_datasets(tmp_path, model, labels=False)
    with pytest.raises(DataMismatch) as err:
        prune(model, retrain_spec(0.5, {"kind": "one_shot"}), tmp_path / "out", datasets=datasets)
    assert err.value.field == "labels"


def test_regrowth_reconnects_weights_and_still_hits_the_target(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=3), tmp_path / "mlp.pt")
    # At a constant rate the survivors grow past the pruned weights' old values within these
    # 4 epochs; under the default's warmup and decay none did here, so nothing would regrow.
    spec = retrain_spec(
        0.9, {"kind": "gradual", "steps": 6}, epochs=4, lr=1e-2, regrow=True, lr_schedule="constant"
    )
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))
    assert result.report["training"]["regrown"] > 0
    assert result.report["sparsity"]["achieved"] == pytest.approx(0.9, abs=1e-4)


def test_validation_split_holds_out_the_last_samples_and_scores_them(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=2), tmp_path / "mlp.pt")
    spec = retrain_spec(0.5, {"kind": "one_shot"}, epochs=2, validation_split=0.2)
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))
    training = result.report["training"]
    assert training["samples"] == {"train": 1120, "validation": 280}
    last = training["curve"][-1]
    assert 0.0 <= last["val_accuracy"] <= 1.0
    assert last["val_loss"] >= 0.0


def test_pruned_weights_stay_exactly_zero_although_adam_momentum_would_move_them() -> None:
    weight = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [3.0, -4.0]]))
    optimizer = torch.optim.Adam([weight], lr=0.1)
    for _ in range(3):  # build up momentum on every weight
        optimizer.zero_grad()
        (weight.sum() * 2).backward()
        optimizer.step()
    with torch.no_grad():
        weight[0] = 0.0
    masks = FixedMasks([weight])
    for _ in range(3):
        optimizer.zero_grad()
        (weight**2).sum().backward()
        masks.zero_gradients()
        optimizer.step()
        masks.apply()
        assert torch.equal(weight[0], torch.zeros(2))
    assert masks.sparsity == 0.5


def test_onnx_outputs_of_the_artifact_match_what_the_report_evaluated(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=2), tmp_path / "mlp.onnx")
    spec = retrain_spec(0.6, {"kind": "one_shot"}, epochs=1)
    spec["evaluation"] = {"dataset_id": "ds_train", "metric": "accuracy", "samples": 100}
    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))
    metric = result.report["quality"]["metric"]
    images, labels = digits()
    own = float(
        np.mean(run_onnx(result.artifacts["model"], images[:100]).argmax(1) == labels[:100])
    )
    assert (metric["samples"], metric["pruned"], metric["in_sample"]) == (100, own, True)


def test_mse_trains_on_float_targets_and_evaluates_mse_on_the_artifact(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=2), tmp_path / "mlp.onnx")
    images, labels = digits()
    targets = np.eye(10, dtype=np.float32)[labels]  # one-hot: regress the class indicator
    np.savez(tmp_path / "reg_train.npz", x=images[:1400], targets=targets[:1400])
    np.savez(tmp_path / "reg_test.npz", x=images[1400:], targets=targets[1400:])
    spec = retrain_spec(0.7, {"kind": "one_shot"}, epochs=2, loss="mse")
    spec["retrain"]["dataset_id"] = "ds_reg"
    spec["evaluation"] = {"dataset_id": "ds_reg_test", "metric": "mse"}
    datasets = {"ds_reg": tmp_path / "reg_train.npz", "ds_reg_test": tmp_path / "reg_test.npz"}
    result = prune(model, spec, tmp_path / "out", datasets=datasets)
    metric = result.report["quality"]["metric"]
    out = run_onnx(result.artifacts["model"], images[1400:])
    assert metric["pruned"] == pytest.approx(float(np.mean((out - targets[1400:]) ** 2)))
    assert result.report["training"]["loss"] == "mse"


def test_labels_given_as_a_column_train_and_evaluate_like_flat_ones(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=2), tmp_path / "mlp.onnx")
    images, classes = digits()
    datasets = {
        "ds_train": tmp_path / "train.npz",
        "ds_test": tmp_path / "test.npz",
    }
    # y.reshape(-1, 1), as many pipelines store class ids.
    np.savez(datasets["ds_train"], x=images[:1400], labels=classes[:1400].reshape(-1, 1))
    np.savez(datasets["ds_test"], x=images[1400:], labels=classes[1400:].reshape(-1, 1))
    spec = retrain_spec(0.5, {"kind": "one_shot"}, epochs=1)
    result = prune(model, spec, tmp_path / "out", datasets=datasets)
    assert result.report["quality"]["metric"]["pruned"] == pytest.approx(
        held_out_accuracy(result.artifacts["model"]), abs=1e-9
    )


def test_evaluation_labels_the_model_cannot_predict_are_refused_not_counted_as_misses(
    tmp_path: Path,
) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=1), tmp_path / "mlp.onnx")
    images, classes = digits()
    np.savez(tmp_path / "test.npz", x=images[1400:], labels=classes[1400:] + 10)
    spec = {"sparsity": 0.5, "latency": None, "evaluation": {"dataset_id": "ds_test"}}
    with pytest.raises(DataMismatch, match=r"class ids in \[0, 10\)") as raised:
        prune(model, spec, tmp_path / "out", datasets={"ds_test": tmp_path / "test.npz"})
    assert raised.value.field == "labels"


def test_training_data_with_nan_is_refused_naming_the_array_and_a_sample(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=1), tmp_path / "mlp.onnx")
    datasets = digits_datasets(tmp_path, model)
    images, classes = digits()
    images = images[:1400].copy()
    np.put(images[7], 3, np.nan)
    np.savez(datasets["ds_train"], x=images, labels=classes[:1400])
    spec = retrain_spec(0.5, {"kind": "one_shot"}, epochs=1)
    with pytest.raises(DataMismatch, match=r"'x' contains NaN .*1 of 1400 samples.*index 7"):
        prune(model, spec, tmp_path / "out", datasets=datasets)


def test_evaluation_labels_must_cover_every_sample(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=1), tmp_path / "mlp.onnx")
    images, classes = digits()
    np.savez(tmp_path / "test.npz", x=images[1400:], labels=classes[1400:1700])
    spec = {"sparsity": 0.5, "latency": None, "evaluation": {"dataset_id": "ds_test"}}
    with pytest.raises(DataMismatch, match="'labels' has 300 entries for 397 samples"):
        prune(model, spec, tmp_path / "out", datasets={"ds_test": tmp_path / "test.npz"})
