"""The retraining fields of the PruneSpec: documented defaults, and every bad value refused
naming its field before any work starts."""

from __future__ import annotations

from typing import Any

import pytest

from pruning import InvalidSpec, Unsupported
from pruning.spec import parse_spec
from pruning.training.spec import EvaluationSpec, RetrainSpec, ScheduleSpec

RETRAIN = {"dataset_id": "ds_train"}


def test_retrain_and_schedule_take_the_documented_defaults() -> None:
    spec = parse_spec({"sparsity": 0.9, "schedule": {"kind": "gradual"}, "retrain": RETRAIN})
    assert spec.schedule == ScheduleSpec("gradual", 3, 10, 3.0, 0.0, 0.75)
    assert spec.retrain == RetrainSpec(
        dataset_id="ds_train",
        epochs=10,
        lr=1e-3,
        batch_size=32,
        optimizer="adam",
        momentum=0.9,
        weight_decay=0.0,
        loss="cross_entropy+distill",
    )
    assert spec.retrain is not None and spec.retrain.validation_split == 0.0
    assert (spec.retrain.lr_schedule, spec.retrain.warmup, spec.retrain.alpha) == (
        "cosine",
        0.05,
        0.5,
    )
    assert spec.evaluation is None


def test_evaluation_defaults_to_accuracy_on_every_sample() -> None:
    spec = parse_spec({"sparsity": 0.5, "evaluation": {"dataset_id": "ds_test"}})
    assert spec.evaluation == EvaluationSpec(dataset_id="ds_test", metric="accuracy", samples=None)


def _bad(change: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"sparsity": 0.8, "schedule": {"kind": "one_shot"}, "retrain": RETRAIN}
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": {"kind": "gradual"}, "retrain": None}, "retrain"),
        ({"schedule": {"kind": "iterative"}, "retrain": None}, "retrain"),
        (
            {"schedule": {"kind": "iterative", "rounds": 5}, "retrain": {"epochs": 4}},
            "retrain.epochs",
        ),
        ({"schedule": {"kind": "iterative", "rounds": 0}}, "schedule.rounds"),
        ({"schedule": {"kind": "gradual", "steps": 0}}, "schedule.steps"),
        ({"schedule": {"kind": "gradual", "exponent": 0.5}}, "schedule.exponent"),
        ({"schedule": {"kind": "gradual", "initial_sparsity": 0.9}}, "schedule.initial_sparsity"),
        ({"schedule": {"kind": "gradual", "pruning_fraction": 0.0}}, "schedule.pruning_fraction"),
        ({"schedule": {"kind": "gradual", "rounds": 3}}, "schedule.rounds"),
        ({"schedule": {"kind": "cyclic"}}, "schedule.kind"),
        ({"retrain": {"dataset_id": ""}}, "retrain.dataset_id"),
        ({"retrain": {"epochs": 0}}, "retrain.epochs"),
        ({"retrain": {"epochs": 1001}}, "retrain.epochs"),
        ({"retrain": {"lr": 0}}, "retrain.lr"),
        ({"retrain": {"lr": 11}}, "retrain.lr"),
        ({"retrain": {"batch_size": 0}}, "retrain.batch_size"),
        ({"retrain": {"optimizer": "lbfgs"}}, "retrain.optimizer"),
        ({"retrain": {"momentum": 1.0}}, "retrain.momentum"),
        ({"retrain": {"weight_decay": -0.1}}, "retrain.weight_decay"),
        ({"retrain": {"loss": "hinge"}}, "retrain.loss"),
        ({"retrain": {"temperature": 0}}, "retrain.temperature"),
        ({"retrain": {"validation_split": 0.6}}, "retrain.validation_split"),
        ({"retrain": {"regrow": "yes"}}, "retrain.regrow"),
        ({"retrain": {"max_samples": 0}}, "retrain.max_samples"),
        ({"retrain": {"seed": -1}}, "retrain.seed"),
        ({"retrain": {"epoch": 3}}, "retrain.epoch"),
        ({"evaluation": {"dataset_id": "ds_t", "metric": "f1"}}, "evaluation.metric"),
        ({"evaluation": {"metric": "mse"}}, "evaluation.dataset_id"),
        ({"evaluation": {"dataset_id": "ds_t", "samples": 0}}, "evaluation.samples"),
    ],
)
def test_bad_retraining_values_are_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSpec) as err:
        parse_spec(_bad(change))
    assert err.value.field == field


@pytest.mark.parametrize("schedule", [{"kind": "gradual"}, {"kind": "iterative", "rounds": 2}])
def test_channel_and_nm_granularities_accept_every_schedule(schedule: dict[str, Any]) -> None:
    channels = _bad({"granularity": {"kind": "channel"}, "schedule": schedule})
    nm = _bad({"sparsity": 0.5, "granularity": {"kind": "n:m", "n": 2, "m": 4}})
    nm["schedule"] = schedule
    assert parse_spec(channels).schedule.kind == schedule["kind"]
    assert parse_spec(nm).nm == (2, 4)


def test_a_channel_schedule_refuses_regrowth_of_single_weights() -> None:
    spec = _bad({"granularity": {"kind": "channel"}, "retrain": {"regrow": True}})
    assert parse_spec(spec).retrain is not None  # one event: nothing to regrow into
    spec["schedule"] = {"kind": "gradual"}
    with pytest.raises(Unsupported) as err:
        parse_spec(spec)
    assert err.value.field == "retrain.regrow"
