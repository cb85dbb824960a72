"""The spec's quality options, parsed apart from the rest of ``pruning/spec.py``: how the target
sparsity is spread over layers (``allocation``), what is done to each layer's mask after the
one-shot pass (``refine``), and the sparsity chosen by an accuracy budget or measured over a
list (``sparsity: {"auto": ...}``, ``sweep``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pruning.errors import InvalidSpec
from pruning.spec_values import choice_at, object_at

ALLOCATIONS = ("uniform", "owl", "sensitivity")
REFINES = ("dsnot", "least_squares")
UPDATES = ("none", "least_squares")
AUTO_METRICS = ("accuracy", "mse")
MAX_PRUNINGS = 8


@dataclass(frozen=True)
class AllocationSpec:
    """``owl``: Yin et al. 2024's outlier-weighted layerwise sparsity, outliers the
    ``|x|*|w|`` above ``m`` times the layer's mean, sparsities within +-``lam`` of the target.
    ``sensitivity``: each layer's output error at ``points`` sparsities around the target
    (within +-``spread``), then the cheapest allocation meeting the target exactly."""

    kind: str = "uniform"
    m: float = 5.0
    lam: float = 0.08
    spread: float = 0.2
    points: int = 5


@dataclass(frozen=True)
class RefineSpec:
    """``dsnot``: training-free prune-and-grow swaps per output row while they lower the
    layer's reconstruction error (at most ``max_cycles`` per row), then, with ``update``
    ``least_squares``, the kept weights solved by least squares; ``least_squares``: only that
    solve."""

    kind: str
    max_cycles: int = 50
    update: str = "none"

    @property
    def solves(self) -> bool:
        return self.kind == "least_squares" or self.update == "least_squares"


@dataclass(frozen=True)
class SearchSpec:
    """``auto``: the largest sparsity whose ``metric`` on the evaluation data drops at most
    ``max_drop`` below the dense model's (rises, for ``mse``), by bisection over
    [``low``, ``high``] in at most ``prunings`` one-shot prunings from the dense model.
    ``sweep``: the metric at each of ``points``; the model returned is at ``sparsity``."""

    kind: str  # "auto" | "sweep"
    metric: str = "accuracy"
    max_drop: float = 0.01
    low: float = 0.0
    high: float = 0.95
    prunings: int = MAX_PRUNINGS
    points: tuple[float, ...] = ()


def parse_allocation(raw: Any) -> AllocationSpec:
    if raw is None:
        return AllocationSpec()
    if isinstance(raw, str):
        raw = {"kind": raw}
    obj = object_at(raw, "allocation")
    kind = choice_at(obj.get("kind"), ALLOCATIONS, "allocation.kind")
    allowed = {"uniform": set(), "owl": {"m", "lam"}, "sensitivity": {"spread", "points"}}[kind]
    _refuse_extra(obj, {"kind", *allowed}, "allocation")
    d = AllocationSpec()
    return AllocationSpec(
        kind=kind,
        m=_number(obj.get("m", d.m), "allocation.m", 1.0, 1e6),
        lam=_number(obj.get("lam", d.lam), "allocation.lam", 0.0, 0.5),
        spread=_number(obj.get("spread", d.spread), "allocation.spread", 0.0, 0.5),
        points=_integer(obj.get("points", d.points), "allocation.points", 2, 16),
    )


def parse_refine(raw: Any) -> RefineSpec | None:
    if raw is None:
        return None
    obj = object_at(raw, "refine")
    kind = choice_at(obj.get("kind"), REFINES, "refine.kind")
    allowed = {"dsnot": {"max_cycles", "update"}, "least_squares": set()}[kind]
    _refuse_extra(obj, {"kind", *allowed}, "refine")
    return RefineSpec(
        kind=kind,
        max_cycles=_integer(obj.get("max_cycles", 50), "refine.max_cycles", 1, 100000),
        update=choice_at(obj.get("update", "none"), UPDATES, "refine.update"),
    )


def parse_search(sparsity: Any, sweep: Any) -> tuple[SearchSpec | None, Any]:
    """The search the spec asks for, and the number to parse as ``sparsity`` (the lower end
    of an ``auto`` search stands in for it until the search has chosen)."""
    if isinstance(sparsity, Mapping):
        if sweep is not None:
            raise InvalidSpec(
                "sweep measures a list of sparsities without choosing; it cannot be combined "
                'with sparsity {"auto": ...}; drop one',
                field="sweep",
            )
        auto = _auto(sparsity)
        return auto, auto.low
    if sweep is None:
        return None, sparsity
    if not isinstance(sweep, list) or not 1 <= len(sweep) <= MAX_PRUNINGS:
        raise InvalidSpec(f"sweep must be a list of 1 to {MAX_PRUNINGS} sparsities", field="sweep")
    points = tuple(_number(s, f"sweep[{i}]", 0.0, 1.0, True) for i, s in enumerate(sweep))
    return SearchSpec(kind="sweep", points=tuple(sorted(set(points)))), sparsity


def _auto(raw: Mapping[str, Any]) -> SearchSpec:
    _refuse_extra(raw, {"auto"}, "sparsity")
    obj = object_at(raw.get("auto"), "sparsity.auto")
    _refuse_extra(obj, {"metric", "max_drop", "low", "high", "prunings"}, "sparsity.auto")
    d = SearchSpec(kind="auto")
    low = _number(obj.get("low", d.low), "sparsity.auto.low", 0.0, 1.0, True)
    high = _number(obj.get("high", d.high), "sparsity.auto.high", 0.0, 1.0, True)
    if high <= low:
        raise InvalidSpec(
            f"sparsity.auto.high ({high:g}) must be above low ({low:g})", field="sparsity.auto"
        )
    return SearchSpec(
        kind="auto",
        metric=choice_at(obj.get("metric", d.metric), AUTO_METRICS, "sparsity.auto.metric"),
        max_drop=_number(obj.get("max_drop", d.max_drop), "sparsity.auto.max_drop", 0.0, 1e9),
        low=low,
        high=high,
        prunings=_integer(
            obj.get("prunings", d.prunings), "sparsity.auto.prunings", 2, MAX_PRUNINGS
        ),
    )


def _refuse_extra(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key, value in obj.items():
        if key not in allowed and value is not None:
            raise InvalidSpec(f"{where} takes no field {key!r}", field=f"{where}.{key}")


def _number(value: Any, where: str, low: float, high: float, open_high: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    inside = ok and low <= value and (value < high if open_high else value <= high)
    if not inside:
        bracket = ")" if open_high else "]"
        raise InvalidSpec(
            f"{where} must be a number in [{low:g}, {high:g}{bracket}, got {value!r}", field=where
        )
    return float(value)


def _integer(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidSpec(
            f"{where} must be an integer in [{low}, {high}], got {value!r}", field=where
        )
    return value
