"""The transformer options of `granularity: channel` (issue 19) as the schema and the engine's
own parse enforce them: exactly one target, in range; `global` allocation only with
`output_error`; each refusal names the field."""

from typing import Any

import pytest
from pydantic import ValidationError

from api_schemas import JobCreate, PruneSpec
from pruning.errors import InvalidSpec
from pruning.spec import parse_spec


def _refusals(granularity: dict[str, Any]) -> dict[tuple[str | int, ...], str]:
    spec = {"sparsity": 0.5, "granularity": {"kind": "channel", **granularity}}
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate({"model_id": "mdl_x", "spec": spec})
    return {tuple(e["loc"]): e["msg"] for e in caught.value.errors()}


def test_channel_options_default_to_the_old_behaviour() -> None:
    spec = PruneSpec.model_validate({"sparsity": 0.5, "granularity": {"kind": "channel"}})
    granularity: Any = spec.granularity
    assert (granularity.allocation, granularity.rescale, granularity.target) == (
        "uniform",
        False,
        None,
    )
    parsed = parse_spec({"sparsity": 0.5, "granularity": {"kind": "channel"}})
    assert (parsed.units.allocation, parsed.units.rescale, parsed.units.target) == (
        "uniform",
        False,
        None,
    )


@pytest.mark.parametrize(
    "target", [{}, {"speedup": 1.5, "flops": 0.5}, {"speedup": 1.0}, {"flops": 1.5}]
)
def test_a_target_takes_exactly_one_reachable_goal(target: dict[str, Any]) -> None:
    refusals = _refusals({"target": target})
    assert all("target" in loc for loc in [tuple(map(str, k)) for k in refusals]), refusals
    with pytest.raises(InvalidSpec) as caught:
        parse_spec({"sparsity": 0.5, "granularity": {"kind": "channel", "target": target}})
    assert caught.value.field is not None and caught.value.field.startswith("granularity.target")


def test_global_allocation_needs_output_error_importance() -> None:
    refusals = _refusals({"allocation": "global"})
    assert any("allocation" in loc for loc in refusals) and "output_error" in str(refusals)
    with pytest.raises(InvalidSpec) as caught:
        parse_spec({"sparsity": 0.5, "granularity": {"kind": "channel", "allocation": "global"}})
    assert caught.value.field == "granularity.allocation"


def test_the_full_transformer_example_parses_in_both_parsers() -> None:
    granularity = {
        "kind": "channel",
        "importance": "output_error",
        "allocation": "global",
        "rescale": True,
        "target": {"speedup": 1.5},
    }
    raw = {"sparsity": 0.6, "granularity": granularity, "calibration": {"dataset_id": "ds_1"}}
    PruneSpec.model_validate(raw)
    parsed = parse_spec(raw)
    assert parsed.channel_importance == "output_error"
    assert parsed.units.target is not None and parsed.units.target.value == 1.5


def test_data_driven_units_are_one_shot_only() -> None:
    raw = {
        "sparsity": 0.5,
        "granularity": {"kind": "channel", "rescale": True},
        "schedule": {"kind": "iterative"},
        "retrain": {"dataset_id": "ds_t"},
    }
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(raw)
    assert caught.value.field == "granularity.rescale"
