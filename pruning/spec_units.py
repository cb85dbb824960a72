"""The engine's view of the transformer options of ``granularity: channel`` (issue 19):
``allocation``, ``rescale`` and ``target``, built from the contract (``api_schemas.spec``),
which validates them and holds their defaults; and the engine's own check of them."""

from __future__ import annotations

from dataclasses import dataclass

from api_schemas import spec as contract
from pruning.errors import InvalidSpec
from pruning.spec_values import default_of

_C = contract.ChannelGranularity


@dataclass(frozen=True)
class TargetSpec:
    kind: str  # "speedup" | "flops" | "parameters"
    value: float


@dataclass(frozen=True)
class UnitSpec:
    allocation: str = default_of(_C, "allocation")  # "uniform" | "global"
    rescale: bool = default_of(_C, "rescale")
    target: TargetSpec | None = None


def units_view(
    granularity: contract.UnstructuredGranularity
    | contract.NMGranularity
    | contract.ChannelGranularity,
) -> UnitSpec:
    if not isinstance(granularity, contract.ChannelGranularity):
        return UnitSpec()
    target = granularity.target
    given = None if target is None else next(k for k, v in target if v is not None)
    return UnitSpec(
        granularity.allocation,
        granularity.rescale,
        None if target is None or given is None else TargetSpec(given, getattr(target, given)),
    )


def check_units_schedule(units: UnitSpec, importance: str, schedule: str) -> None:
    """A channel schedule masks channels by weight norm while training, then cuts them; the
    data-driven ranking, the refit and the search belong to one-shot cuts."""
    asked = [
        name
        for name, on in (
            ("importance", importance == "output_error"),
            ("rescale", units.rescale),
            ("target", units.target is not None),
        )
        if on
    ]
    if asked and schedule != "one_shot":
        raise InvalidSpec(
            f"granularity.{asked[0]} works with a one_shot schedule (with or without retrain); "
            f"a {schedule} schedule masks channels by weight norm",
            field=f"granularity.{asked[0]}",
        )
