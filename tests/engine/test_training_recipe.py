"""The retraining recipe (issue 15): warmup then cosine decay of the learning rate, and the
dense model's outputs distilled beside the labels, by default; the earlier recipe (constant
rate, cross-entropy alone) one option away, and the report naming the one that ran."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import pytest
import torch

from pruning import DataMismatch, prune
from pruning.training.data import Split, TrainingData
from pruning.training.losses import cross_entropy, distill, make_loss
from pruning.training.schedules import lr_factor
from tests.engine.training_factories import (
    digits_datasets,
    export_digits,
    make_digits_mlp,
    retrain_spec,
    trained,
)


def test_cosine_rises_over_the_warmup_then_decays_to_zero_at_the_last_step() -> None:
    total = 100
    factors = [lr_factor("cosine", 0.1, step, total) for step in range(total)]
    assert factors[0] == pytest.approx(1 / 11)
    assert all(a < b for a, b in itertools.pairwise(factors[:11]))
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[-1] < 0.001
    assert lr_factor("cosine", 0.0, 0, total) == 1.0  # no warmup: the full rate at once


def test_cosine_holds_the_full_rate_until_the_last_pruning_event() -> None:
    factors = [lr_factor("cosine", 0.0, step, 100, hold_until=60) for step in range(100)]
    assert set(factors[:61]) == {1.0}
    assert factors[70] == pytest.approx(0.5 * (1 + math.cos(math.pi * 10 / 40)))
    assert factors[-1] < 0.01


def test_the_constant_schedule_keeps_the_rate_throughout() -> None:
    assert {lr_factor("constant", 0.05, step, 50) for step in range(50)} == {1.0}


def _data(labels: bool) -> TrainingData:
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(8, 4, generator=generator)]
    split = Split(inputs=inputs, labels=torch.arange(8) % 3 if labels else None, targets=None)
    return TrainingData("ds_train", split, None, batch_size=4)


def test_cross_entropy_plus_distill_weighs_the_two_terms_by_alpha() -> None:
    data = _data(labels=True)
    out = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    teacher = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    batch = dataclasses.replace(data.train, teacher=teacher)
    loss = make_loss("cross_entropy+distill", 3.0, data, alpha=0.25)
    assert loss.needs_teacher
    assert data.train.labels is not None
    expected = 0.75 * cross_entropy(out, data.train.labels) + 0.25 * distill(out, teacher, 3.0)
    assert float(loss.fn(out, batch)) == pytest.approx(float(expected))


def test_the_combined_loss_needs_labels() -> None:
    with pytest.raises(DataMismatch, match="cross_entropy\\+distill"):
        make_loss("cross_entropy+distill", 2.0, _data(labels=False))


def test_the_report_names_the_recipe_that_ran(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=2), tmp_path / "mlp.onnx")
    datasets = digits_datasets(tmp_path, model)
    spec = retrain_spec(0.5, {"kind": "one_shot"}, epochs=1)
    new = prune(model, spec, tmp_path / "new", datasets=datasets)
    training = new.report["training"]
    assert training["loss"] == "cross_entropy+distill"
    assert (training["alpha"], training["temperature"]) == (0.5, 2.0)
    assert training["lr_schedule"] == {"kind": "cosine", "warmup": 0.05, "decay_from_step": 0}
    old = retrain_spec(0.5, {"kind": "one_shot"}, epochs=1, loss="cross_entropy")
    old["retrain"]["lr_schedule"] = "constant"
    training = prune(model, old, tmp_path / "old", datasets=datasets).report["training"]
    assert training["loss"] == "cross_entropy" and "alpha" not in training
    assert training["lr_schedule"]["kind"] == "constant"
