"""The sparsity chosen by an accuracy budget, or the metric measured over a list.

``auto``: bisection over one-shot prunings, each from the dense weights. The metric worsens
with sparsity only on average: accuracy on a few hundred samples moves by whole samples, so an
isolated pruning can fail the budget below the boundary or keep it above. Each step therefore
bisects the bracket of the monotone (isotonic least-squares) fit of every drop measured so far,
not of the last probe alone, and once the bracket is narrow a probe one point past its failing
end checks that failure: one unlucky probe is then pooled with the pass above it instead of
halving the interval the wrong way. A pruning keeps the budget when the upper one-sided
``confidence`` bound of its drop does (the paired per-sample differences' mean plus z times
their standard error): the evaluation samples chose the model, and a drop measured just under
the budget on them is as likely as not over it on other data. The model returned is the
sparsest pruning that was both measured within the budget and within it on that fit (not a
lone lucky point past the boundary). The weights of every pruning within the budget are kept
aside until the end (a later probe can pool the best so far away), so the choice costs no
extra pruning, at the price of up to ``prunings`` copies of the selected tensors in memory.
``sweep``: one pruning per listed sparsity; the model returned is the one at the spec's
sparsity."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pruning.quality_spec import SearchSpec
from pruning.tensors import FloatArray, WeightTensor

CHECK = 0.01  # how far past a failure a probe checks that it was not one unlucky pruning
PruneAt = Callable[[float], None]  # prune the (restored dense) model to a sparsity
Measure = Callable[[], FloatArray]  # the metric of each evaluation sample, the model as it is


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
    dense_values = np.asarray(measure(), dtype=np.float64)
    dense_metric = float(dense_values.mean())
    curve: list[dict[str, Any]] = []

    def probe(s: float) -> dict[str, Any]:
        dense.restore()
        start = time.perf_counter()
        prune_at(s)
        values = np.asarray(measure(), dtype=np.float64)
        drops = _drop(spec.metric, dense_values, values)
        point = {
            "sparsity": s,
            "metric": float(values.mean()),
            "drop": float(drops.mean()),
            "pruning": len(curve) + 1,
            "time_s": round(time.perf_counter() - start, 4),
        }
        if spec.kind == "auto":
            point["drop_bound"] = upper_bound(drops, spec.confidence)
            point["within_budget"] = point["drop_bound"] <= spec.max_drop + 1e-12
        curve.append(point)
        return point

    resolution = 0.0
    if spec.kind == "sweep":
        chosen = _sweep(spec, sparsity, tensors, dense, probe)
    else:
        chosen, resolution = _bisect(spec, tensors, dense, probe)
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
        notes["resolution"] = resolution
        notes["confidence"] = spec.confidence
        notes["samples"] = int(dense_values.size)
        notes["bound"] = (
            "drop_bound: the mean of the per-sample drops (dense minus pruned on the same "
            "sample) plus z * their standard deviation / sqrt(samples), z the one-sided "
            "normal quantile of `confidence`; a pruning keeps the budget when its bound does"
        )
    return SearchOutcome(chosen, notes)


def _bisect(
    spec: SearchSpec,
    tensors: Sequence[WeightTensor],
    dense: _Weights,
    probe: Callable[[float], dict[str, Any]],
) -> tuple[float, float]:
    """The sparsity kept, and how far above it the boundary may lie on the monotone fit."""
    measured: list[tuple[float, float]] = []  # (sparsity, drop)
    kept: dict[float, _Weights] = {}  # the prunings measured within the budget
    for _ in range(spec.prunings):
        at = next_probe(measured, spec.max_drop, spec.low, spec.high)
        point = probe(at)
        measured.append((at, point["drop_bound"]))
        if point["within_budget"]:
            kept[at] = _Weights(tensors)
    chosen = choose(measured, spec.max_drop)
    _, high = bracket(measured, spec.max_drop, spec.low, spec.high)
    if chosen is None:  # nothing tested kept the budget: the dense model is returned
        dense.restore()
        return 0.0, high - spec.low
    kept[chosen].restore()
    return chosen, high - chosen


def monotone_fit(drops: Sequence[float]) -> list[float]:
    """The non-decreasing sequence nearest ``drops`` in least squares (pool adjacent
    violators): ``drops`` ordered by sparsity."""
    blocks: list[list[float]] = []  # [mean, count]
    for d in drops:
        blocks.append([d, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, n2), (m1, n1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    return [m for m, n in blocks for _ in range(int(n))]


def _fitted(measured: Sequence[tuple[float, float]]) -> list[tuple[float, float, float]]:
    ordered = sorted(measured)
    fit = monotone_fit([d for _, d in ordered])
    return [(s, d, f) for (s, d), f in zip(ordered, fit, strict=True)]


def bracket(
    measured: Sequence[tuple[float, float]], budget: float, low: float, high: float
) -> tuple[float, float]:
    """The interval the boundary lies in, on the monotone fit of the drops measured so far:
    the largest sparsity the fit keeps within ``budget``, the smallest it puts over."""
    for s, _, f in _fitted(measured):
        if f <= budget + 1e-12:
            low = max(low, s)
        else:
            high = min(high, s)
    return low, max(high, low)


def next_probe(
    measured: Sequence[tuple[float, float]], budget: float, low: float, high: float
) -> float:
    """The bracket's middle; once the bracket is narrower than 2 * CHECK, first a probe CHECK
    past its failing end, unless a failure there already confirms it: bisection only ever
    probes inside the bracket, so a failure below the boundary (one unlucky pruning) would
    otherwise never meet the pass above it that the monotone fit pools it with."""
    lo, hi = bracket(measured, budget, low, high)
    failing_end = hi < high and any(s == hi for s, _ in measured)
    if failing_end and hi - lo < 2 * CHECK and hi + CHECK < high:
        confirmed = any(hi < s <= hi + CHECK + 1e-12 and d > budget for s, d in measured)
        if not confirmed:
            return hi + CHECK
    return (lo + hi) / 2


def choose(measured: Sequence[tuple[float, float]], budget: float) -> float | None:
    """The largest sparsity measured within ``budget`` and within it on the monotone fit."""
    inside = [s for s, d, f in _fitted(measured) if max(d, f) <= budget + 1e-12]
    return max(inside) if inside else None


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


def _drop(metric: str, dense: FloatArray, values: FloatArray) -> FloatArray:
    """How much worse than dense, sample by sample: accuracy falls, mse rises."""
    return dense - values if metric == "accuracy" else values - dense


def upper_bound(drops: FloatArray, confidence: float) -> float:
    """The drop's one-sided ``confidence`` upper bound from paired per-sample drops: their
    mean plus z times its standard error (the mean alone at confidence 0, or one sample)."""
    mean = float(drops.mean())
    if confidence <= 0 or drops.size < 2:
        return mean
    z = statistics.NormalDist().inv_cdf(confidence)
    return mean + z * float(drops.std(ddof=1)) / math.sqrt(drops.size)
