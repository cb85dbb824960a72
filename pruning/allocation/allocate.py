"""Per-layer sparsities for a target: the plan's overrides, filled in by the allocation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pruning.allocation.budget import cheapest, exact_counts
from pruning.allocation.owl import outlier_ratio, owl_sparsities
from pruning.allocation.sensitivity import grid, output_error
from pruning.allocation.statistics import DenseStatistics, dense_statistics
from pruning.calibration.capture import LayerInputs
from pruning.calibration.dataset import CalibrationData
from pruning.layers import LayerPlan
from pruning.quality_spec import AllocationSpec
from pruning.tensors import WeightTensor


@dataclass(frozen=True)
class Allocation:
    plan: LayerPlan  # overrides hold each allocated layer's fraction
    notes: dict[str, Any] | None  # the report's ``allocation`` block; None when uniform


class Allocator:
    """One per job: the dense statistics are taken on first use and kept, so that the
    prunings of a search allocate from them again without another pass."""

    def __init__(
        self,
        spec: AllocationSpec,
        inputs: Callable[[], LayerInputs],
        data: Callable[[], CalibrationData],
    ) -> None:
        self.spec = spec
        self._inputs = inputs
        self._data = data
        self._stats: DenseStatistics | None = None
        self._errors: dict[tuple[str, float], float] = {}

    def allocate(self, plan: LayerPlan, target: float) -> Allocation:
        if self.spec.kind == "uniform":
            return Allocation(plan, None)
        inputs = self._inputs()
        free = [
            t
            for t in plan.selected
            if t.name not in plan.overrides and t.name not in inputs.unscorable and t.numel
        ]
        stats = self._statistics(inputs, [t.name for t in free])
        if self.spec.kind == "owl":
            scores, wanted = self._owl(free, inputs, stats, target)
        else:
            scores, wanted = self._sensitivity(free, inputs, stats, target)
        sizes = [t.numel for t in free]
        counts = exact_counts(sizes, [wanted[t.name] for t in free], round(target * sum(sizes)))
        chosen = {t.name: c / t.numel for t, c in zip(free, counts, strict=True)}
        overrides = {**plan.overrides, **chosen}
        notes = self._notes(plan, free, chosen, scores)
        return Allocation(replace(plan, overrides=overrides), notes)

    def _statistics(self, inputs: LayerInputs, names: list[str]) -> DenseStatistics:
        if self._stats is None:
            grams = self.spec.kind == "sensitivity"
            self._stats = dense_statistics(inputs, names, self._data(), grams)
        return self._stats

    def _owl(
        self, free: list[WeightTensor], inputs: LayerInputs, stats: DenseStatistics, target: float
    ) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
        ratios = {
            t.name: outlier_ratio(
                inputs.geometry[t.name].matrix(t.values), stats.sq_norms[t.name], self.spec.m
            )
            for t in free
        }
        sizes = {t.name: t.numel for t in free}
        wanted = owl_sparsities(ratios, sizes, target, self.spec.lam)
        return {n: {"outlier_ratio": r} for n, r in ratios.items()}, wanted

    def _sensitivity(
        self, free: list[WeightTensor], inputs: LayerInputs, stats: DenseStatistics, target: float
    ) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
        points = grid(target, self.spec.spread, self.spec.points)
        costs = [[self._error(t, inputs, stats, s) for s in points] for t in free]
        sizes = [t.numel for t in free]
        picked = cheapest([points] * len(free), costs, sizes, target * sum(sizes))
        scores = {
            t.name: {"output_error": dict(zip(map(str, points), c, strict=True))}
            for t, c in zip(free, costs, strict=True)
        }
        return scores, {t.name: s for t, s in zip(free, picked, strict=True)}

    def _error(
        self, tensor: WeightTensor, inputs: LayerInputs, stats: DenseStatistics, s: float
    ) -> float:
        key = (tensor.name, s)
        if key not in self._errors:
            matrix = inputs.geometry[tensor.name].matrix(tensor.values)
            g = stats.grams[tensor.name]
            self._errors[key] = output_error(matrix, stats.sq_norms[tensor.name], g, s)
        return self._errors[key]

    def _notes(
        self,
        plan: LayerPlan,
        free: list[WeightTensor],
        chosen: dict[str, float],
        scores: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        why = {
            "owl": f"outlier_ratio: share of |w|*||x|| above {self.spec.m:g} x the layer's "
            f"mean on the calibration data; more outliers, fewer zeros, within "
            f"+-{self.spec.lam:g} of the target",
            "sensitivity": "output_error: relative layer output error on the calibration data "
            "with a Wanda mask at each probed sparsity; the allocation minimises the summed "
            "error for the target's zeros",
        }[self.spec.kind]
        fixed = [t.name for t in plan.selected if t.name not in chosen]
        options = (
            {"m": self.spec.m, "lam": self.spec.lam}
            if self.spec.kind == "owl"
            else {"spread": self.spec.spread, "points": self.spec.points}
        )
        return {
            "kind": self.spec.kind,
            **options,
            "score": why,
            "mean_kept": "the zeros over the allocated layers are round(target x their size)",
            "layers": [
                {"name": t.name, "sparsity": chosen[t.name], **scores[t.name]} for t in free
            ],
            "not_allocated": fixed,
        }
