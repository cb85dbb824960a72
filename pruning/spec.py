"""The PruneSpec as the engine reads it: plain JSON in, frozen dataclasses out.

The service validates the contract with pydantic; the engine parses the same JSON again here
so it can run on its own (CLI, tests) and so that anything it cannot do fails before work
starts, naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pruning.errors import InvalidSpec, Unsupported
from pruning.methods import METHODS
from pruning.quality_spec import (
    AllocationSpec,
    RefineSpec,
    SearchSpec,
    parse_allocation,
    parse_refine,
    parse_search,
)
from pruning.spec_units import UnitSpec, check_units_schedule, parse_units
from pruning.spec_values import choice_at, object_at
from pruning.training.learned.spec_rules import check_learned
from pruning.training.spec import (
    DistillSpec,
    EvaluationSpec,
    RetrainSpec,
    ScheduleSpec,
    check_distill_fits,
    check_schedule_needs,
    parse_distill,
    parse_evaluation,
    parse_retrain,
    parse_schedule,
)

SCOPES = ("global", "layerwise")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    options: tuple[tuple[str, Any], ...] = ()  # as the method's Scorer declares in OPTIONS


@dataclass(frozen=True)
class CalibrationSpec:
    dataset_id: str
    samples: int = 128


@dataclass(frozen=True)
class LayerSelection:
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    overrides: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class LatencySpec:
    """Timing until the 95% intervals of the medians are within `tolerance` of them, or the
    budget (seconds for all batch sizes, warm-up included) is spent; see pruning/latency.py."""

    batch_sizes: tuple[int, ...] = (1, 32)
    threads: int = 1
    warmup: int = 5
    iterations: int = 1  # the minimum per batch size; one that cannot fit the budget is skipped
    max_iterations: int = 1000
    budget_s: float = 4.0
    tolerance: float = 0.03


MAX_LATENCY_BUDGET_S = 600.0
COMPRESSED_SIZES = ("sampled", "measured", "none")


@dataclass(frozen=True)
class ReportSpec:
    compressed_sizes: str = "sampled"  # zip/zstd sizes: from a sample, of whole files, or none


@dataclass(frozen=True)
class PruneSpec:
    method: MethodSpec
    sparsity: float
    scope: str = "global"
    granularity: str = "unstructured"
    layers: LayerSelection = field(default_factory=LayerSelection)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    latency: LatencySpec | None = field(default_factory=LatencySpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    outputs: tuple[str, ...] = ("model",)
    input_shapes: Mapping[str, tuple[int, ...]] | None = None
    nm: tuple[int, int] | None = None  # (n, m) when granularity is "n:m"
    channel_importance: str = "l1"  # "l1" | "l2" | "output_error" when granularity is "channel"
    units: UnitSpec = field(default_factory=UnitSpec)  # transformer heads and neurons
    calibration: CalibrationSpec | None = None
    retrain: RetrainSpec | None = None
    evaluation: EvaluationSpec | None = None
    # Quality options (pruning/quality_spec.py): per-layer allocation, mask refinement, search.
    allocation: AllocationSpec = field(default_factory=AllocationSpec)
    refine: RefineSpec | None = None
    search: SearchSpec | None = None
    distill: DistillSpec | None = None  # masks-fixed distillation after a one-shot pass


def parse_spec(raw: Mapping[str, Any]) -> PruneSpec:
    """Read a PruneSpec dict (API.md), applying its defaults; raise InvalidSpec/Unsupported."""
    if not isinstance(raw, Mapping):
        raise InvalidSpec("the spec must be a JSON object")
    _refuse_unknown(raw)
    granularity = object_at(raw.get("granularity", {"kind": "unstructured"}), "granularity")
    search, number = parse_search(raw.get("sparsity"), raw.get("sweep"))
    sparsity = _fraction(number, "sparsity")
    schedule = parse_schedule(raw.get("schedule") or {"kind": "one_shot"}, sparsity)
    retrain = parse_retrain(raw.get("retrain"))
    check_schedule_needs(schedule, retrain)
    spec = PruneSpec(
        method=_method(raw.get("method", {"name": "magnitude"})),
        sparsity=sparsity,
        scope=choice_at(raw.get("scope", "global"), SCOPES, "scope"),
        granularity=_granularity(granularity),
        nm=_nm(granularity, sparsity),
        channel_importance=_importance(granularity),
        units=parse_units(granularity),
        layers=_layers(raw.get("layers") or {}),
        schedule=schedule,
        latency=_latency(raw.get("latency", {})),
        report=_report(raw.get("report") or {}),
        outputs=_outputs(raw.get("outputs", ["model"])),
        input_shapes=_input_shapes(raw.get("input_shapes")),
        calibration=_calibration(raw.get("calibration")),
        retrain=retrain,
        evaluation=parse_evaluation(raw.get("evaluation")),
        allocation=parse_allocation(raw.get("allocation")),
        refine=parse_refine(raw.get("refine")),
        search=search,
        distill=parse_distill(raw.get("distill")),
    )
    _check_training_granularity(spec)
    check_units_schedule(spec.units, spec.channel_importance, spec.schedule.kind)
    check_learned(
        spec.method.name,
        dict(spec.method.options),
        spec.retrain,
        spec.schedule,
        spec.granularity,
    )
    check_quality_options(spec)
    check_distill_fits(spec.distill, spec.retrain, spec.calibration, spec.search, spec.granularity)
    return spec


_KNOWN = {
    "method",
    "sparsity",
    "scope",
    "granularity",
    "layers",
    "schedule",
    "latency",
    "report",
    "outputs",
    "input_shapes",
    "calibration",
    "retrain",
    "evaluation",
    "allocation",
    "refine",
    "sweep",
    "distill",
}


def _refuse_unknown(raw: Mapping[str, Any]) -> None:
    for key, value in raw.items():
        if key not in _KNOWN and value is not None:
            raise InvalidSpec(f"unknown field {key!r} in the spec", field=key)


def _method(raw: Any) -> MethodSpec:
    obj = object_at(raw, "method")
    name = choice_at(obj.get("name"), tuple(METHODS), "method.name")
    allowed = METHODS[name].OPTIONS
    options = []
    for key, value in obj.items():
        if key == "name" or value is None:
            continue
        if key not in allowed:
            raise InvalidSpec(f"method {name!r} takes no option {key!r}", field=f"method.{key}")
        if allowed[key] is int:
            value = _int(value, f"method.{key}", 0)
        elif not isinstance(value, allowed[key]) and not (allowed[key] is float and _real(value)):
            raise InvalidSpec(
                f"method.{key} must be a {allowed[key].__name__}, got {value!r}",
                field=f"method.{key}",
            )
        options.append((key, value))
    return MethodSpec(name=name, options=tuple(options))


def _calibration(raw: Any) -> CalibrationSpec | None:
    if raw is None:
        return None
    obj = object_at(raw, "calibration")
    dataset_id = obj.get("dataset_id")
    if not isinstance(dataset_id, str) or not dataset_id:
        raise InvalidSpec("calibration.dataset_id must be a dataset id", field="calibration")
    return CalibrationSpec(dataset_id, _int(obj.get("samples", 128), "calibration.samples", 1))


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _granularity(raw: Mapping[str, Any]) -> str:
    return choice_at(raw.get("kind"), ("unstructured", "n:m", "channel"), "granularity.kind")


def _nm(raw: Mapping[str, Any], sparsity: float) -> tuple[int, int] | None:
    """(n, m) with n zeros in every m weights; the sparsity it implies must be the spec's."""
    if raw.get("kind") != "n:m":
        return None
    n = _int(raw.get("n", 2), "granularity.n", 1)
    m = _int(raw.get("m", 4), "granularity.m", 2)
    if n >= m or m > 32:
        raise InvalidSpec(f"n:m needs 1 <= n < m <= 32, got {n}:{m}", field="granularity")
    if abs(sparsity - n / m) > 1e-9:
        raise InvalidSpec(
            f"n:m zeroes exactly n/m = {n / m:g} of the weights; set sparsity to {n / m:g}",
            field="sparsity",
        )
    return n, m


def _importance(raw: Mapping[str, Any]) -> str:
    if raw.get("kind") != "channel":
        return "l1"
    return choice_at(
        raw.get("importance", "l1"), ("l1", "l2", "output_error"), "granularity.importance"
    )


def _check_training_granularity(spec: PruneSpec) -> None:
    """Regrowth reconnects single weights; a channel schedule masks whole channels, which a
    partly reconnected channel would no longer be."""
    if spec.retrain is None or not spec.retrain.regrow or spec.schedule.kind == "one_shot":
        return
    if spec.granularity == "channel":
        raise Unsupported(
            "retrain.regrow reconnects single weights, and a channel schedule keeps whole "
            "channels zeroed until they are cut; set regrow to false for granularity 'channel'",
            field="retrain.regrow",
        )


def _layers(raw: Any) -> LayerSelection:
    obj = object_at(raw, "layers")
    overrides = object_at(obj.get("overrides") or {}, "layers.overrides")
    return LayerSelection(
        include=_patterns(obj.get("include", ["*"]), "layers.include"),
        exclude=_patterns(obj.get("exclude", []), "layers.exclude"),
        overrides=tuple(
            (str(pattern), _fraction(value, f"layers.overrides[{pattern!r}]"))
            for pattern, value in overrides.items()
        ),
    )


def _latency(raw: Any) -> LatencySpec | None:
    if raw is None:
        return None
    obj = object_at(raw, "latency")
    default = LatencySpec()
    sizes = obj.get("batch_sizes", list(default.batch_sizes))
    if not isinstance(sizes, list) or not sizes:
        raise InvalidSpec("latency.batch_sizes must be a non-empty list", field="latency")
    return LatencySpec(
        batch_sizes=tuple(_int(b, "latency.batch_sizes", 1) for b in sizes),
        threads=_int(obj.get("threads", default.threads), "latency.threads", 1),
        warmup=_int(obj.get("warmup", default.warmup), "latency.warmup", 0),
        iterations=_int(obj.get("iterations", default.iterations), "latency.iterations", 1),
        max_iterations=_int(
            obj.get("max_iterations", default.max_iterations), "latency.max_iterations", 1
        ),
        budget_s=_real_in(
            obj.get("budget_s", default.budget_s), "latency.budget_s", 0.0, MAX_LATENCY_BUDGET_S
        ),
        tolerance=_real_in(obj.get("tolerance", default.tolerance), "latency.tolerance", 1e-3, 1),
    )


def _report(raw: Any) -> ReportSpec:
    obj = object_at(raw, "report")
    how = obj.get("compressed_sizes", ReportSpec.compressed_sizes)
    return ReportSpec(choice_at(how, COMPRESSED_SIZES, "report.compressed_sizes"))


def _real_in(value: Any, where: str, low: float, high: float) -> float:
    if not _real(value) or not math.isfinite(value) or not low <= value <= high:
        raise InvalidSpec(
            f"{where} must be a number in [{low:g}, {high:g}], got {value!r}", field=where
        )
    return float(value)


KNOWN_OUTPUTS = ("model", "sparse_npz", "onnx_sparse")


def _outputs(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
        raise InvalidSpec("outputs must be a list of names", field="outputs")
    for name in raw:
        if name not in KNOWN_OUTPUTS:
            raise Unsupported(
                f"output {name!r} is unknown; choose from {', '.join(KNOWN_OUTPUTS)}",
                field="outputs",
            )
    return tuple(raw) or ("model",)


def _input_shapes(raw: Any) -> dict[str, tuple[int, ...]] | None:
    if raw is None:
        return None
    obj = object_at(raw, "input_shapes")
    return {
        str(name): tuple(_int(d, f"input_shapes[{name!r}]", 1) for d in _list(dims, name))
        for name, dims in obj.items()
    }


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidSpec(
            f"input_shapes[{name!r}] must be a list of positive ints", field="input_shapes"
        )
    return value


def _patterns(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise InvalidSpec(f"{where} must be a list of glob patterns", field=where)
    return tuple(raw)


def _fraction(value: Any, where: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise InvalidSpec(f"{where} must be a number in [0, 1), got {value!r}", field=where)
    return float(value)


def _int(value: Any, where: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidSpec(f"{where} must be an integer >= {minimum}, got {value!r}", field=where)
    return value


def check_quality_options(spec: PruneSpec) -> None:
    """Allocation, refinement and the search act on one-shot, per-weight pruning with
    calibration (and evaluation) data; say which field stands in the way otherwise."""
    asked = [
        name
        for name, on in (
            ("allocation", spec.allocation.kind != "uniform"),
            ("refine", spec.refine is not None),
            ("sparsity" if spec.search and spec.search.kind == "auto" else "sweep", spec.search),
        )
        if on
    ]
    for name in asked:
        if spec.retrain is not None or spec.schedule.kind != "one_shot":
            raise Unsupported(
                f"{name} applies to one-shot pruning without retraining; drop retrain and "
                "use schedule one_shot",
                field=name,
            )
        if spec.granularity == "channel":
            raise Unsupported(f"{name} applies to per-weight pruning, not channels", field=name)
    if spec.allocation.kind != "uniform" and spec.granularity == "n:m":
        raise InvalidSpec(
            "granularity 'n:m' prunes every selected layer alike; drop allocation",
            field="allocation",
        )
    if (spec.allocation.kind != "uniform" or spec.refine) and spec.calibration is None:
        raise InvalidSpec(
            "allocation and refine read calibration data: set "
            '"calibration": {"dataset_id": "ds_...", "samples": 128}',
            field="calibration",
        )
    _check_search(spec)


def _check_search(spec: PruneSpec) -> None:
    search = spec.search
    if search is None:
        return
    if spec.granularity == "n:m":
        raise InvalidSpec(
            "granularity 'n:m' fixes the sparsity at n/m; drop the search", field="sparsity"
        )
    if spec.evaluation is None:
        raise InvalidSpec(
            "a sparsity search measures the evaluation metric: set "
            '"evaluation": {"dataset_id": "ds_...", "metric": "accuracy"}',
            field="evaluation",
        )
    if search.kind == "auto" and search.metric != spec.evaluation.metric:
        raise InvalidSpec(
            f"sparsity.auto.metric is {search.metric!r} but evaluation.metric is "
            f"{spec.evaluation.metric!r}; they must be the same",
            field="sparsity.auto.metric",
        )
