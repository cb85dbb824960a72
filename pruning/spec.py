"""The PruneSpec as the engine reads it: the contract (``api_schemas.spec``) validates the JSON
and holds every field and default; these frozen views give the engine the shapes it works with
(tuples, the granularity's parts apart) and are built from the validated contract by
``view_of``. The engine's own checks are the rules it alone knows (see ``parse_spec``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from api_schemas import spec as contract
from pruning.quality_spec import (
    AllocationSpec,
    RefineSpec,
    SearchSpec,
    allocation_view,
    refine_view,
    search_view,
)
from pruning.spec_units import UnitSpec, check_units_schedule, units_view
from pruning.spec_values import default_of, validated
from pruning.training.spec import (
    DistillSpec,
    EvaluationSpec,
    RetrainSpec,
    ScheduleSpec,
    schedule_view,
)

DEFAULT_METHOD: str = default_of(contract.PruneSpec, "method").name


@dataclass(frozen=True)
class MethodSpec:
    name: str
    # Every option of the contract's member, given or its default; null ones (a learned
    # method's rates: "the method's default") are left out.
    options: tuple[tuple[str, Any], ...] = ()


# Blocks the engine reads as the contract holds them.
CalibrationSpec = contract.CalibrationSpec
ReportSpec = contract.ReportSpec


_L = contract.LayerSelection


@dataclass(frozen=True)
class LayerSelection:
    include: tuple[str, ...] = default_of(_L, "include")
    exclude: tuple[str, ...] = default_of(_L, "exclude")
    overrides: tuple[tuple[str, float], ...] = ()


_T = contract.LatencySpec


@dataclass(frozen=True)
class LatencySpec:
    """Timing until the 95% intervals of the medians are within `tolerance` of them, or the
    budget (seconds for all batch sizes, warm-up included) is spent; see pruning/latency.py."""

    batch_sizes: tuple[int, ...] = default_of(_T, "batch_sizes")
    threads: int = default_of(_T, "threads")
    warmup: int = default_of(_T, "warmup")
    iterations: int = default_of(_T, "iterations")  # the minimum per batch size
    max_iterations: int = default_of(_T, "max_iterations")
    budget_s: float = default_of(_T, "budget_s")
    tolerance: float = default_of(_T, "tolerance")


@dataclass(frozen=True)
class PruneSpec:
    """Built by ``view_of`` from a validated contract, which sets every field; the defaults
    here only serve views made by hand (tests, benchmarks) and are the contract's."""

    method: MethodSpec
    sparsity: float
    scope: str = default_of(contract.PruneSpec, "scope")
    granularity: str = default_of(contract.PruneSpec, "granularity").kind
    layers: LayerSelection = field(default_factory=LayerSelection)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    latency: LatencySpec | None = field(default_factory=LatencySpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    outputs: tuple[str, ...] = default_of(contract.PruneSpec, "outputs")
    input_shapes: Mapping[str, tuple[int, ...]] | None = None
    nm: tuple[int, int] | None = None  # (n, m) when granularity is "n:m"
    channel_importance: str = default_of(contract.ChannelGranularity, "importance")
    units: UnitSpec = field(default_factory=UnitSpec)  # transformer heads and neurons
    calibration: CalibrationSpec | None = None
    retrain: RetrainSpec | None = None
    evaluation: EvaluationSpec | None = None
    # Quality options (pruning/quality_spec.py): per-layer allocation, mask refinement, search.
    allocation: AllocationSpec = field(default_factory=AllocationSpec)
    refine: RefineSpec | None = None
    search: SearchSpec | None = None
    distill: DistillSpec | None = None  # masks-fixed distillation after a one-shot pass


def parse_spec(raw: Mapping[str, Any] | contract.PruneSpec) -> PruneSpec:
    """The engine's view of a spec: a dict (the CLI, tests) validated by the contract, or the
    contract object itself; refusals are ``InvalidSpec``/``Unsupported`` naming the field.
    The contract checks the fields and the rules between them (schedules and retraining,
    learned methods, quality options); the one check left here is the engine's alone."""
    spec = view_of(validated(raw))
    check_units_schedule(spec.units, spec.channel_importance, spec.schedule.kind)
    return spec


def view_of(c: contract.PruneSpec) -> PruneSpec:
    """Every value read from the validated contract: no field or default is restated here."""
    granularity = c.granularity
    search = search_view(c.sparsity, c.sweep)
    sparsity = search.low if search is not None and search.kind == "auto" else c.sparsity
    assert isinstance(sparsity, float)
    return PruneSpec(
        method=MethodSpec(
            c.method.name,
            tuple(
                (key, getattr(c.method, key))
                for key in type(c.method).model_fields
                if key != "name" and getattr(c.method, key) is not None
            ),
        ),
        sparsity=sparsity,
        scope=c.scope,
        granularity=granularity.kind,
        nm=_nm(granularity),
        channel_importance=(
            granularity.importance
            if isinstance(granularity, contract.ChannelGranularity)
            else default_of(contract.ChannelGranularity, "importance")
        ),
        units=units_view(granularity),
        layers=LayerSelection(
            tuple(c.layers.include), tuple(c.layers.exclude), tuple(c.layers.overrides.items())
        ),
        schedule=schedule_view(c.schedule),
        latency=None if c.latency is None else _latency(c.latency),
        report=c.report,
        outputs=tuple(c.outputs),
        input_shapes=(
            None
            if c.input_shapes is None
            else {name: tuple(dims) for name, dims in c.input_shapes.items()}
        ),
        calibration=c.calibration,
        retrain=c.retrain,
        evaluation=c.evaluation,
        allocation=allocation_view(c.allocation),
        refine=refine_view(c.refine),
        search=search,
        distill=c.distill,
    )


def _nm(granularity: contract.Granularity) -> tuple[int, int] | None:
    return (granularity.n, granularity.m) if granularity.kind == "n:m" else None


def _latency(c: contract.LatencySpec) -> LatencySpec:
    return LatencySpec(**{**c.model_dump(), "batch_sizes": tuple(c.batch_sizes)})
