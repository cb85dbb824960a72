"""The engine's parse of the transformer options of ``granularity: channel`` (issue 19):
``allocation``, ``rescale`` and ``target``; the HTTP contract is ``api_schemas.spec``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pruning.errors import InvalidSpec
from pruning.spec_values import choice_at, object_at

TARGET_KINDS = ("speedup", "flops", "parameters")


@dataclass(frozen=True)
class TargetSpec:
    kind: str  # "speedup" | "flops" | "parameters"
    value: float


@dataclass(frozen=True)
class UnitSpec:
    allocation: str = "uniform"  # "uniform" | "global"
    rescale: bool = False
    target: TargetSpec | None = None


def parse_units(granularity: Mapping[str, Any]) -> UnitSpec:
    if granularity.get("kind") != "channel":
        return UnitSpec()
    allocation = choice_at(
        granularity.get("allocation", "uniform"), ("uniform", "global"), "granularity.allocation"
    )
    if allocation == "global" and granularity.get("importance") != "output_error":
        raise InvalidSpec(
            "allocation 'global' compares layers by output error; set importance to 'output_error'",
            field="granularity.allocation",
        )
    rescale = granularity.get("rescale", False)
    if not isinstance(rescale, bool):
        raise InvalidSpec("granularity.rescale must be true or false", field="granularity.rescale")
    raw = granularity.get("target")
    return UnitSpec(allocation, rescale, None if raw is None else _target(raw))


def _target(raw: Any) -> TargetSpec:
    obj = object_at(raw, "granularity.target")
    given = [k for k in obj if obj[k] is not None]
    if len(given) != 1 or given[0] not in TARGET_KINDS:
        raise InvalidSpec(
            f"granularity.target takes exactly one of {', '.join(TARGET_KINDS)} (got {given})",
            field="granularity.target",
        )
    kind = given[0]
    value = obj[kind]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and 1.0 < value <= 100.0 if kind == "speedup" else ok and 0.0 < value < 1.0
    if not ok:
        bounds = "in (1, 100]" if kind == "speedup" else "a fraction in (0, 1)"
        raise InvalidSpec(
            f"granularity.target.{kind} must be {bounds}, got {value!r}",
            field=f"granularity.target.{kind}",
        )
    return TargetSpec(kind, float(value))


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
