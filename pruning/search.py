"""The sparsity chosen by an accuracy budget, or the metric measured over a list.

``auto``: bisection over one-shot prunings, each from the dense weights, on the assumption
that the metric worsens as sparsity grows (it is measured, not assumed, at every probe): the
interval [low, high] halves at each pruning around the largest sparsity seen within the
budget, so ``prunings`` probes place it within (high - low) / 2^prunings of the boundary.
The best pruning's weights are kept aside, so the model returned is one that was measured
within the budget, with no extra pruning. ``sweep``: one pruning per listed sparsity; the
model returned is the one at the spec's sparsity."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pruning.quality_spec import SearchSpec
from pruning.tensors import FloatArray, WeightTensor

PruneAt = Callable[[float], None]  # prune the (restored dense) model to a sparsity
Measure = Callable[[], float]  # the evaluation metric of the model as it is now


@dataclass(frozen=True)
class SearchOutcome:
    sparsity: float  # what the returned model was pruned to
    notes: dict[str, Any]  # the report's ``search`` block, with the curve


class _Weights:
    """Copies of the selected tensors, written back in place (the adapter saves them)."""

    def __init__(self, tensors: Sequence[WeightTensor]) -> None:
        self.tensors = list(tensors)
        self.copies: dict[str, FloatArray] = {t.name: t.values.copy() for t in self.tensors}

    def restore(self) -> None:
        for t in self.tensors:
            np.copyto(t.values, self.copies[t.name])


def search(
    spec: SearchSpec,
    sparsity: float,
    tensors: Sequence[WeightTensor],
    prune_at: PruneAt,
    measure: Measure,
) -> SearchOutcome:
    dense = _Weights(tensors)
    dense_metric = measure()
    curve: list[dict[str, Any]] = []

    def probe(s: float) -> dict[str, Any]:
        dense.restore()
        start = time.perf_counter()
        prune_at(s)
        value = measure()
        point = {
            "sparsity": s,
            "metric": value,
            "drop": _drop(spec.metric, dense_metric, value),
            "pruning": len(curve) + 1,
            "time_s": round(time.perf_counter() - start, 4),
        }
        if spec.kind == "auto":
            point["within_budget"] = point["drop"] <= spec.max_drop + 1e-12
        curve.append(point)
        return point

    if spec.kind == "sweep":
        chosen = _sweep(spec, sparsity, tensors, dense, probe)
    else:
        chosen = _bisect(spec, tensors, dense, probe)
    notes = {
        "kind": spec.kind,
        "metric": spec.metric,
        "dense_metric": dense_metric,
        "prunings": len(curve),
        "chosen_sparsity": chosen,
        "curve": sorted(curve, key=lambda p: p["sparsity"]),
        "reused": "calibration data and allocation statistics are read once; each pruning "
        "starts from the dense weights and recomputes the method's own statistics",
        "note": "the evaluation data chose the sparsity, so the metric on it is optimistic; "
        "measure the returned model on other data for an unbiased figure",
    }
    if spec.kind == "auto":
        notes |= {"max_drop": spec.max_drop, "low": spec.low, "high": spec.high}
        notes["resolution"] = (spec.high - spec.low) / 2**spec.prunings
    return SearchOutcome(chosen, notes)


def _bisect(
    spec: SearchSpec,
    tensors: Sequence[WeightTensor],
    dense: _Weights,
    probe: Callable[[float], dict[str, Any]],
) -> float:
    low, high = spec.low, spec.high
    best: _Weights | None = None
    chosen = 0.0
    for _ in range(spec.prunings):
        middle = (low + high) / 2
        if probe(middle)["within_budget"]:
            best, chosen, low = _Weights(tensors), middle, middle
        else:
            high = middle
    if best is None:  # nothing tested kept the budget: the dense model is returned
        dense.restore()
        return 0.0
    best.restore()
    return chosen


def _sweep(
    spec: SearchSpec,
    sparsity: float,
    tensors: Sequence[WeightTensor],
    dense: _Weights,
    probe: Callable[[float], dict[str, Any]],
) -> float:
    kept: _Weights | None = None
    for s in spec.points:
        probe(s)
        if abs(s - sparsity) < 1e-12:
            kept = _Weights(tensors)
    if kept is None:  # the spec's sparsity was not in the list: one more pruning
        probe(sparsity)
        kept = _Weights(tensors)
    kept.restore()
    return sparsity


def _drop(metric: str, dense: float, value: float) -> float:
    """How much worse than dense: accuracy falls, mse rises."""
    return dense - value if metric == "accuracy" else value - dense
