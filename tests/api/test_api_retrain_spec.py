"""The retraining contract of issue 4 as the schema enforces it: which schedules need
`retrain`, how epochs, sparsities and optimizers must agree, and that each refusal names the
field a client has to change (the API turns the location into the 422's `errors[].field`)."""

import inspect
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api_schemas import JobCreate, PruneSpec
from api_schemas import spec as spec_module

RETRAIN = {"dataset_id": "ds_train"}


def _refusals(spec: dict[str, Any]) -> dict[tuple[str | int, ...], str]:
    """location -> message of every error, located as in a createJob body."""
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate({"model_id": "mdl_x", "spec": spec})
    return {tuple(e["loc"]): e["msg"] for e in caught.value.errors()}


@pytest.mark.parametrize("schedule", [{"kind": "iterative"}, {"kind": "gradual"}])
def test_iterative_and_gradual_schedules_without_retrain_are_refused_at_retrain(
    schedule: dict[str, Any],
) -> None:
    refusals = _refusals({"sparsity": 0.9, "schedule": schedule})

    assert list(refusals) == [("spec", "retrain")]
    assert "needs `retrain`" in refusals[("spec", "retrain")]


def test_one_shot_may_fine_tune_or_not() -> None:
    assert PruneSpec.model_validate({"sparsity": 0.5}).retrain is None
    tuned = PruneSpec.model_validate({"sparsity": 0.5, "retrain": RETRAIN})
    assert tuned.schedule.kind == "one_shot" and tuned.retrain is not None


@pytest.mark.parametrize("schedule", [{"kind": "iterative"}, {"kind": "gradual"}])
def test_structured_granularities_take_every_schedule(schedule: dict[str, Any]) -> None:
    nm = {"kind": "n:m", "n": 2, "m": 4}
    for granularity, sparsity in ((nm, 0.5), ({"kind": "channel"}, 0.3)):
        spec = {"sparsity": sparsity, "granularity": granularity, "schedule": schedule}
        assert (
            PruneSpec.model_validate({**spec, "retrain": RETRAIN}).schedule.kind == schedule["kind"]
        )


def test_a_channel_schedule_refuses_regrowth_at_regrow() -> None:
    spec = {
        "sparsity": 0.5,
        "granularity": {"kind": "channel"},
        "schedule": {"kind": "gradual"},
        "retrain": {**RETRAIN, "regrow": True},
    }

    refusals = _refusals(spec)

    assert list(refusals) == [("spec", "retrain", "regrow")]
    assert "single weights" in refusals[("spec", "retrain", "regrow")]


def test_iterative_needs_at_least_one_epoch_per_round() -> None:
    spec = {
        "sparsity": 0.9,
        "schedule": {"kind": "iterative", "rounds": 4},
        "retrain": {**RETRAIN, "epochs": 3},
    }

    refusals = _refusals(spec)

    assert list(refusals) == [("spec", "retrain", "epochs")]
    assert "at least 4" in refusals[("spec", "retrain", "epochs")]
    spec["retrain"] = {**RETRAIN, "epochs": 4}
    assert PruneSpec.model_validate(spec).retrain is not None


def test_gradual_cannot_start_above_the_target_sparsity() -> None:
    spec = {
        "sparsity": 0.5,
        "schedule": {"kind": "gradual", "initial_sparsity": 0.6},
        "retrain": RETRAIN,
    }

    assert list(_refusals(spec)) == [("spec", "schedule", "initial_sparsity")]


def test_momentum_is_an_sgd_setting() -> None:
    adam = {"sparsity": 0.5, "retrain": {**RETRAIN, "momentum": 0.5}}
    assert list(_refusals(adam)) == [("spec", "retrain", "momentum")]

    sgd = {"sparsity": 0.5, "retrain": {**RETRAIN, "optimizer": "sgd", "momentum": 0.5}}
    retrain = PruneSpec.model_validate(sgd).retrain
    assert retrain is not None and retrain.momentum == 0.5


@pytest.mark.parametrize(
    ("block", "field", "value"),
    [
        ("retrain", "epochs", 0),
        ("retrain", "epochs", 1001),
        ("retrain", "lr", 0.0),
        ("retrain", "batch_size", 0),
        ("retrain", "loss", "hinge"),
        ("retrain", "optimizer", "rmsprop"),
        ("retrain", "temperature", 0.0),
        ("retrain", "validation_split", 0.6),
        ("retrain", "max_samples", 0),
        ("evaluation", "metric", "f1"),
        ("evaluation", "samples", 0),
    ],
)
def test_out_of_range_training_and_evaluation_settings_name_their_field(
    block: str, field: str, value: object
) -> None:
    spec = {"sparsity": 0.5, block: {"dataset_id": "ds_x", field: value}}

    assert ("spec", block, field) in _refusals(spec)


@pytest.mark.parametrize(
    ("field", "value"),
    [("steps", 0), ("exponent", 0.5), ("pruning_fraction", 0.0), ("initial_sparsity", 1.0)],
)
def test_out_of_range_gradual_settings_name_their_field(field: str, value: float) -> None:
    spec = {"sparsity": 0.9, "schedule": {"kind": "gradual", field: value}, "retrain": RETRAIN}

    assert ("spec", "schedule", "gradual", field) in _refusals(spec)


def test_defaults_are_the_ones_the_engine_implements() -> None:
    spec = PruneSpec.model_validate(
        {
            "sparsity": 0.9,
            "schedule": {"kind": "gradual"},
            "retrain": RETRAIN,
            "evaluation": {"dataset_id": "ds_test"},
        }
    ).model_dump(mode="json")

    assert spec["schedule"] == {
        "kind": "gradual",
        "steps": 10,
        "exponent": 3.0,
        "initial_sparsity": 0.0,
        "pruning_fraction": 0.75,
    }
    assert spec["retrain"] == {
        "dataset_id": "ds_train",
        "epochs": 10,
        "lr": 0.001,
        "batch_size": 32,
        "optimizer": "adam",
        "momentum": 0.9,
        "weight_decay": 0.0,
        "loss": "cross_entropy+distill",
        "temperature": 2.0,
        "alpha": 0.5,
        "lr_schedule": "cosine",
        "warmup": 0.05,
        "validation_split": 0.0,
        "regrow": False,
        "max_samples": None,
        "seed": 0,
    }
    assert spec["evaluation"] == {"dataset_id": "ds_test", "metric": "accuracy", "samples": None}
    assert PruneSpec.model_validate(
        {"sparsity": 0.5, "schedule": {"kind": "iterative"}, "retrain": RETRAIN}
    ).schedule.model_dump() == {
        "kind": "iterative",
        "rounds": 3,
    }


def test_a_stored_spec_validates_again_unchanged() -> None:
    """The job store keeps the dumped spec and getJob validates it again: defaults that a
    validator would refuse when given explicitly would break every later read."""
    for optimizer in ("adam", "sgd"):
        spec = PruneSpec.model_validate(
            {
                "sparsity": 0.8,
                "schedule": {"kind": "iterative", "rounds": 2},
                "retrain": {**RETRAIN, "optimizer": optimizer, "loss": "distill"},
                "evaluation": {"dataset_id": "ds_test", "metric": "mse"},
            }
        )
        assert PruneSpec.model_validate(spec.model_dump(mode="json")) == spec


def _spec_models() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(spec_module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseModel)
        and value.__module__ == spec_module.__name__
    ]


@pytest.mark.parametrize("model", _spec_models(), ids=lambda m: m.__name__)
def test_every_spec_schema_has_examples_that_validate(model: type[BaseModel]) -> None:
    examples = model.model_json_schema().get("examples")

    assert examples, f"{model.__name__} has no examples"
    for example in examples:
        model.model_validate(example)


@pytest.mark.parametrize("model", _spec_models(), ids=lambda m: m.__name__)
def test_every_spec_field_is_described_for_generated_clients(model: type[BaseModel]) -> None:
    undescribed = [name for name, f in model.model_fields.items() if not f.description]

    assert undescribed == []


def test_the_gradual_example_is_a_retraining_job_with_evaluation() -> None:
    examples = PruneSpec.model_json_schema()["examples"]

    gradual = [e for e in examples if e.get("schedule", {}).get("kind") == "gradual"]
    assert gradual and gradual[0]["retrain"] and gradual[0]["evaluation"]
