"""The PruneSpec as the engine reads it: API.md's defaults, and refusals that name the field."""

from __future__ import annotations

import pytest

from pruning import InvalidSpec, Unsupported
from pruning.spec import LatencySpec, LayerSelection, MethodSpec, parse_spec


def test_missing_fields_take_the_documented_defaults() -> None:
    spec = parse_spec({"sparsity": 0.8})
    assert spec.method == MethodSpec("magnitude")
    assert (spec.scope, spec.granularity, spec.schedule.kind) == (
        "global",
        "unstructured",
        "one_shot",
    )
    assert spec.layers == LayerSelection(("*",), (), ())
    assert spec.latency == LatencySpec((1, 32), 1, 5, 1, 1000, 4.0, 0.03)
    assert spec.outputs == ("model",)
    assert spec.input_shapes is None


def test_full_api_example_parses() -> None:
    spec = parse_spec(
        {
            "method": {"name": "magnitude"},
            "sparsity": 0.8,
            "scope": "global",
            "granularity": {"kind": "unstructured"},
            "layers": {"include": ["*"], "exclude": [], "overrides": {"classifier*": 0.5}},
            "schedule": {"kind": "one_shot"},
            "calibration": None,
            "retrain": None,
            "evaluation": None,
            "latency": {"batch_sizes": [1, 32], "threads": 1, "warmup": 5, "iterations": 50},
            "outputs": ["model"],
        }
    )
    assert spec.layers.overrides == (("classifier*", 0.5),)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "granularity": {"kind": "channel"},
                "schedule": {"kind": "iterative", "rounds": 2},
                "retrain": {"dataset_id": "ds_1", "regrow": True},
            },
            "retrain.regrow",
        ),
        ({"outputs": ["model", "csr"]}, "outputs"),
    ],
)
def test_unsupported_features_are_refused_naming_the_field(change: dict, field: str) -> None:
    with pytest.raises(Unsupported) as err:
        parse_spec({"sparsity": 0.5, **change})
    assert err.value.code == "unsupported"
    assert err.value.field == field


@pytest.mark.parametrize(
    "raw",
    [
        {"sparsity": 1.0},
        {"sparsity": -0.1},
        {"sparsity": "0.5"},
        {},
        {"sparsity": 0.5, "scope": "everywhere"},
        {"sparsity": 0.5, "layers": {"overrides": {"fc*": 2}}},
        {"sparsity": 0.5, "latency": {"batch_sizes": [0]}},
        {"sparsity": 0.5, "input_shapes": {"x": [1, -3]}},
        {"sparsity": 0.5, "colour": "blue"},
    ],
)
def test_invalid_specs_are_invalid_spec(raw: dict) -> None:
    with pytest.raises(InvalidSpec) as err:
        parse_spec(raw)
    assert err.value.code == "invalid_spec"


def test_random_method_takes_a_seed() -> None:
    spec = parse_spec({"sparsity": 0.5, "method": {"name": "random", "seed": 3}})
    assert spec.method.options == (("seed", 3),)
    with pytest.raises(InvalidSpec, match="seed"):
        parse_spec({"sparsity": 0.5, "method": {"name": "magnitude", "seed": 3}})


def test_latency_may_be_turned_off() -> None:
    assert parse_spec({"sparsity": 0.5, "latency": None}).latency is None


def test_a_null_the_contract_does_not_take_reads_as_absent() -> None:
    """Python callers pass `None` for "not given"; only `latency: null` means something."""
    spec = parse_spec({"sparsity": 0.5, "allocation": None, "layers": None, "retrain": None})
    assert spec == parse_spec({"sparsity": 0.5})
