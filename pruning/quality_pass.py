"""The quality options around one pruning pass: before it, the allocation fills the plan's
per-layer fractions; after it, the refinement improves each layer's mask and weights. One
object per job, so a search's prunings share the calibration data and the statistics."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pruning.allocation import Allocator
from pruning.calibration.capture import LayerInputs, layer_inputs
from pruning.calibration.dataset import CalibrationData, load_calibration, require_calibration
from pruning.context import JobContext
from pruning.evaluation import load_evaluation, per_sample_of
from pruning.layers import LayerPlan
from pruning.refine import Refiner
from pruning.search import search
from pruning.spec import PruneSpec
from pruning.tensors import FloatArray


class QualityPass:
    def __init__(self, ctx: JobContext) -> None:
        spec = self.spec = ctx.spec
        self.model, self.inputs, self.datasets = ctx.model, ctx.inputs, ctx.datasets
        self._data: CalibrationData | None = None
        self._layers: LayerInputs | None = None
        self.allocator = Allocator(spec.allocation, self.layer_inputs, self.calibration)
        self.refiner = (
            Refiner(spec.refine, self.layer_inputs, self.calibration) if spec.refine else None
        )
        self.plan: LayerPlan | None = None  # the last pass's plan, with allocated fractions
        self.chosen: float | None = None  # the sparsity a search settled on
        self.notes: dict[str, Any] = {}  # report blocks: allocation, refine, search
        self._dense: dict[str, FloatArray] = {}
        self._kept: dict[float, tuple[Any, LayerPlan | None, dict[str, Any]]] = {}

    @property
    def active(self) -> bool:
        return self.spec.allocation.kind != "uniform" or self.refiner is not None

    def calibration(self) -> CalibrationData:
        if self._data is None:
            spec = self.spec.calibration
            path = require_calibration("allocation/refine", spec, self.datasets)
            assert spec is not None  # require_calibration checked it
            self._data = load_calibration(path, spec.dataset_id, spec.samples, self.inputs.inputs)
        return self._data

    def layer_inputs(self) -> LayerInputs:
        if self._layers is None:
            self._layers = layer_inputs(self.model, self.inputs.names)
        return self._layers

    def before(self, plan: LayerPlan, spec: PruneSpec) -> LayerPlan:
        """The plan to prune with: per-layer fractions from the allocation."""
        allocation = self.allocator.allocate(plan, spec.sparsity)
        self.plan = allocation.plan
        if allocation.notes is not None:
            self.notes["allocation"] = allocation.notes
        if self.refiner is not None:
            self._dense = {t.name: t.values.copy() for t in plan.selected}
        return allocation.plan

    def after(self, plan: LayerPlan, spec: PruneSpec) -> None:
        if self.refiner is not None:
            self.notes["refine"] = self.refiner.refine(plan.selected, self._dense, spec.nm)
            self._dense = {}

    def remember(self, sparsity: float, calibration: Any) -> None:
        """What a search's pruning at ``sparsity`` left for the report."""
        self._kept[sparsity] = (calibration, self.plan, dict(self.notes))

    def recall(self, sparsity: float) -> Any:
        """The report's notes of the pruning kept at ``sparsity``; its calibration notes."""
        self.chosen = sparsity
        if sparsity not in self._kept:  # the dense model: nothing was pruned
            self.plan, self.notes = None, {k: v for k, v in self.notes.items() if k == "search"}
            return None
        calibration, self.plan, notes = self._kept[sparsity]
        self.notes = {**notes, **{k: v for k, v in self.notes.items() if k == "search"}}
        return calibration

    def final_spec(self, spec: PruneSpec) -> PruneSpec:
        """The spec the report describes: a search's chosen sparsity as the target."""
        return spec if self.chosen is None else replace(spec, sparsity=self.chosen)

    def overrides(self, plan: LayerPlan) -> dict[str, float]:
        return dict((self.plan or plan).overrides)


def search_sparsity(
    quality: QualityPass,
    spec: PruneSpec,
    plan: LayerPlan,
    prune: Callable[[PruneSpec], Any],
    scratch: Path,
    threads: int,
) -> Any:
    """Run the spec's search, leave the kept pruning's weights in the model; return that
    pruning's calibration notes. ``prune`` runs one pass at the given spec's sparsity."""
    assert spec.search is not None and spec.evaluation is not None  # parse_spec checked
    data = load_evaluation(spec.evaluation, quality.datasets, quality.inputs)
    model, metric = quality.model, spec.evaluation.metric

    def measure() -> FloatArray:
        with tempfile.TemporaryDirectory(dir=scratch) as where:
            saved = model.save(Path(where))
            return per_sample_of(type(model), saved, metric, data, quality.inputs, threads)

    def prune_at(s: float) -> None:
        quality.remember(s, prune(replace(spec, sparsity=s)))

    outcome = search(spec.search, spec.sparsity, plan.selected, prune_at, measure)
    quality.notes["search"] = outcome.notes
    return quality.recall(outcome.sparsity)
