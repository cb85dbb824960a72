"""The engine's views of the spec's quality options: how the target sparsity is spread over
layers (``allocation``), what is done to each layer's mask after the one-shot pass
(``refine``), and the sparsity chosen by an accuracy budget or measured over a list
(``sparsity: {"auto": ...}``, ``sweep``). The contract (``api_schemas.spec``) validates them and
holds their defaults; the views are built from it (``*_view``) and restate none."""

from __future__ import annotations

from dataclasses import dataclass

from api_schemas import spec as contract
from pruning.spec_values import default_of

_O, _S, _D, _A = (
    contract.OwlAllocation,
    contract.SensitivityAllocation,
    contract.DsnotRefine,
    contract.AutoSearch,
)


@dataclass(frozen=True)
class AllocationSpec:
    """``owl``: Yin et al. 2024's outlier-weighted layerwise sparsity, outliers the
    ``|x|*|w|`` above ``m`` times the layer's mean, sparsities within +-``lam`` of the target.
    ``sensitivity``: each layer's output error at ``points`` sparsities around the target
    (within +-``spread``), then the cheapest allocation meeting the target exactly."""

    kind: str = default_of(contract.UniformAllocation, "kind")
    m: float = default_of(_O, "m")
    lam: float = default_of(_O, "lam")
    spread: float = default_of(_S, "spread")
    points: int = default_of(_S, "points")


@dataclass(frozen=True)
class RefineSpec:
    """``dsnot``: training-free prune-and-grow swaps per output row while they lower the
    layer's reconstruction error (at most ``max_cycles`` per row), then, with ``update``
    ``least_squares``, the kept weights solved by least squares; ``least_squares``: only that
    solve."""

    kind: str
    max_cycles: int = default_of(_D, "max_cycles")
    update: str = default_of(_D, "update")

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
    metric: str = default_of(_A, "metric")
    max_drop: float = default_of(_A, "max_drop")
    low: float = default_of(_A, "low")
    high: float = default_of(_A, "high")
    prunings: int = default_of(_A, "prunings")
    confidence: float = default_of(_A, "confidence")
    points: tuple[float, ...] = ()


def allocation_view(
    c: contract.UniformAllocation | contract.OwlAllocation | contract.SensitivityAllocation,
) -> AllocationSpec:
    return AllocationSpec(**c.model_dump())


def refine_view(c: contract.DsnotRefine | contract.LeastSquaresRefine | None) -> RefineSpec | None:
    return None if c is None else RefineSpec(**c.model_dump())


def search_view(
    sparsity: float | contract.AutoSparsity, sweep: list[float] | None
) -> SearchSpec | None:
    """An ``auto`` search (whose lower end stands in for the sparsity until it has chosen), a
    sweep over its distinct points in order, or none."""
    if isinstance(sparsity, contract.AutoSparsity):
        return SearchSpec(kind="auto", **sparsity.auto.model_dump())
    if sweep is None:
        return None
    return SearchSpec(kind="sweep", points=tuple(sorted(set(sweep))))
