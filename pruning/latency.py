"""Latency of the dense and the pruned artifact, measured the same way, interleaved, for as
long as the answer is uncertain and the time budget allows.

One iteration runs each model once on the same feeds, back to back, in alternating order so
caches and clocks favour neither. Its speedup is dense_ms / pruned_ms: pairing cancels the
slow drifts of a shared machine that two separate runs would each pick up. The medians of the
dense times, the pruned times and the per-iteration speedups each get a distribution-free 95%
confidence interval from order statistics (`median_interval`), which assumes nothing about the
shape of timing noise (skewed, with outliers). A batch size stops when all three intervals are
within `tolerance` of their medians (`converged`), when its share of the budget is spent
(`budget`), or at `max_iterations`; never before `iterations`, the minimum. A batch size whose
warm-up and minimum would not end within the budget is not measured, and the report says why:
its iteration time is predicted from the batch size before it (scaled by the batch size), or,
for the first, from its warm-up. A speedup is a gain only when its interval lies above 1.0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from pruning.errors import DataMismatch
from pruning.inputs import InputPlan
from pruning.models.base import Array, Runner
from pruning.spec import LatencySpec

CONFIDENCE = 0.95
clock = time.perf_counter  # a module attribute so the stopping rule can be tested on a set clock
_Z = 1.959963984540054  # two-sided 95% point of the standard normal
_EXACT_RANKS_UP_TO = 1000  # past this the binomial's normal approximation is exact enough
_WARMUP_SHARE = 0.25  # warm-up stops early once it has used this share of a batch's budget
# Convergence (and the typical iteration time) is checked after each `_CHECK_GROWTH` more
# iterations, not after each: a check sorts every timing so far, which made a fast model's loop
# quadratic in its iterations.
_CHECK_GROWTH = 0.05

NO_SPEEDUP_NOTE = (
    "Unstructured zeros gave no speedup: dense kernels multiply zeros like any other value, "
    "so unstructured sparsity saves storage, not time, unless a sparse kernel is used."
)
BUDGET_SPLIT = (
    "the budget covers the fidelity on synthetic inputs (run first) and the latency, warm-up "
    "included; what fidelity leaves is split evenly across the batch sizes, in order; time a "
    "batch size leaves unused (it converged, or was skipped) goes to the ones after it. The "
    "minimum iterations may run past a batch size's share, not past the budget: a batch "
    "size whose warm-up and minimum are predicted to end past it is not measured (see "
    "skipped); the prediction scales the batch size measured before it, else the fidelity "
    "runs' time per sample, else one timed warm-up iteration. With budget_s 0, exactly the "
    "minimum is taken for every batch size."
)
METHOD = (
    "each iteration runs dense and pruned once on the same inputs, order alternating; "
    "speedup = median over iterations of dense_ms / pruned_ms; ci95 = distribution-free 95% "
    "interval of a median from order statistics [x(k), x(n+1-k)], k the largest rank with "
    "P(Binomial(n, 1/2) < k) <= 2.5% (none below 6 iterations); p95 = 95th percentile. "
    "verdict 'faster' or 'slower' only when the speedup's interval excludes 1.0"
)


def measure_latency(
    dense: Runner,
    pruned: Runner,
    plan: InputPlan,
    spec: LatencySpec,
    runtime: str,
    on_batch: Callable[[int, int], None] | None = None,
    spent_before_s: float = 0.0,
    sample_s: float | None = None,
) -> dict[str, Any]:
    """``spent_before_s``: what the job's synthetic fidelity took from ``spec.budget_s``;
    ``sample_s``: its time per sample through both models, which predicts the first batch
    size's iteration (so a slow model's first warm-up need not run to be judged too long)."""
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    started = clock()
    end = started + max(0.0, spec.budget_s - spent_before_s)
    # A batch size measured (or the fidelity's one sample) and its typical iteration.
    last: tuple[int, float] | None = None if sample_s is None else (1, sample_s)
    basis = "the fidelity runs' time per sample"
    for index, batch_size in enumerate(spec.batch_sizes):
        if on_batch is not None:
            on_batch(index, batch_size)
        now = clock()
        share = max(0.0, end - now) / (len(spec.batch_sizes) - index)
        feeds = plan.feeds(batch_size, seed=0)
        if isinstance(feeds, str):
            skipped.append({"batch_size": batch_size, "reason": feeds})
            continue
        budget = _Budget(now + share, end if spec.budget_s > 0 else None)
        if last is not None and (late := budget.too_short(spec, last[1] * batch_size / last[0])):
            skipped.append(_over_budget(batch_size, late, basis))
            continue
        try:
            timings = _measure(dense, pruned, feeds, spec, budget)
        except DataMismatch as exc:
            skipped.append({"batch_size": batch_size, "reason": exc.message})
            continue
        if timings.late is not None:
            skipped.append(_over_budget(batch_size, timings.late, "its warm-up"))
            continue
        results.append(timings.to_json(batch_size))
        last = (batch_size, timings.typical_iteration_s())
        basis = f"batch size {batch_size}'s iterations"
    return {
        "runtime": runtime,
        "threads": spec.threads,
        "warmup": spec.warmup,
        "min_iterations": spec.iterations,
        "max_iterations": max(spec.max_iterations, spec.iterations),
        "budget_s": spec.budget_s,
        "budget_split": BUDGET_SPLIT,
        "fidelity_s": round(spent_before_s, 3),
        "spent_s": round(clock() - started, 3),
        "tolerance": spec.tolerance,
        "confidence": CONFIDENCE,
        "method": METHOD,
        "execution": "sequential, one model at a time, dense and pruned runs interleaved",
        "inputs": plan.describe(),
        "results": results,
        "skipped": skipped,
        "note": _note(results),
        "warnings": _warnings(results),
    }


@dataclass
class _Timings:
    dense_ms: list[float] = field(default_factory=list)
    pruned_ms: list[float] = field(default_factory=list)
    warmup: int = 0
    stopped: str = "budget"
    seconds: float = 0.0
    late: _Late | None = None  # set when the minimum would end past the budget: not measured

    def add(self, dense_ms: float, pruned_ms: float) -> None:
        self.dense_ms.append(dense_ms)
        self.pruned_ms.append(pruned_ms)

    @property
    def speedups(self) -> list[float]:
        return [d / p for d, p in zip(self.dense_ms, self.pruned_ms, strict=True) if p > 0]

    def converged(self, tolerance: float) -> bool:
        series = (self.dense_ms, self.pruned_ms, self.speedups)
        widths = [median_interval(s).relative_half_width for s in series]
        return all(w is not None and w <= tolerance for w in widths)

    def typical_iteration_s(self) -> float:
        return float(np.median(np.add(self.dense_ms, self.pruned_ms))) / 1000.0

    def to_json(self, batch_size: int) -> dict[str, Any]:
        speedup = median_interval(self.speedups).rounded(3)  # judged as shown
        return {
            "batch_size": batch_size,
            "dense_ms": _summary(self.dense_ms),
            "pruned_ms": _summary(self.pruned_ms),
            "speedup": speedup.median if self.speedups else None,
            "speedup_ci95": speedup.bounds(),
            "verdict": verdict(speedup),
            "iterations": len(self.dense_ms),
            "warmup": self.warmup,
            "stopped": self.stopped,
            "time_s": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _Late:
    """Why a batch size was not measured: its minimum would end past the budget."""

    iteration_s: float  # one iteration (dense + pruned), predicted
    needed_s: float  # warm-up and the minimum iterations, predicted
    left_s: float  # of the budget, when the batch size came up


@dataclass(frozen=True)
class _Budget:
    deadline: float  # the end of this batch size's share
    end: float | None  # the end of the whole budget; None with budget_s 0 (exact minimum)

    def too_short(self, spec: LatencySpec, iteration_s: float, warm: bool = True) -> _Late | None:
        """The prediction when warm-up (one iteration, if still to come) and the minimum
        iterations would end past the budget; None when they fit or nothing bounds them."""
        if self.end is None:
            return None
        count = spec.iterations + (1 if warm and spec.warmup > 0 else 0)
        left = self.end - clock()
        if iteration_s * count <= left:
            return None
        return _Late(iteration_s, iteration_s * count, max(0.0, left))


def _over_budget(batch_size: int, late: _Late, basis: str) -> dict[str, Any]:
    return {
        "batch_size": batch_size,
        "reason": (
            f"not measured: one iteration (dense and pruned once) is predicted to take "
            f"{late.iteration_s:.2f} s from {basis}, so warm-up and the minimum iterations "
            f"need {late.needed_s:.2f} s, and {late.left_s:.2f} s of latency.budget_s were "
            "left; raise latency.budget_s to measure it"
        ),
        "predicted_iteration_s": round(late.iteration_s, 3),
        "budget_left_s": round(late.left_s, 3),
    }


def _measure(
    dense: Runner, pruned: Runner, feeds: dict[str, Array], spec: LatencySpec, budget: _Budget
) -> _Timings:
    began = clock()
    timings = _Timings()
    deadline = budget.deadline
    warm_until = began + _WARMUP_SHARE * max(0.0, deadline - began)
    pair_s = 0.0
    while timings.warmup < spec.warmup:
        pair_began = clock()
        dense.run(feeds)
        pruned.run(feeds)
        pair_s = clock() - pair_began
        timings.warmup += 1
        if clock() >= warm_until:
            break
    if timings.warmup and (late := budget.too_short(spec, pair_s, warm=False)) is not None:
        timings.late = late
        return timings
    most = max(spec.max_iterations, spec.iterations)
    next_check, typical_s = spec.iterations, 0.0
    while True:
        timings.add(*_time_pair(dense, pruned, feeds, dense_first=len(timings.dense_ms) % 2 == 0))
        done = len(timings.dense_ms)
        if done < spec.iterations:
            continue
        checking = done >= next_check
        if checking:
            next_check = done + max(1, int(done * _CHECK_GROWTH))
            typical_s = timings.typical_iteration_s()
        if checking and timings.converged(spec.tolerance):
            timings.stopped = "converged"
        elif done >= most:
            timings.stopped = "max_iterations"
        elif clock() + typical_s > deadline:
            timings.stopped = "budget"  # the next iteration would end past it
        else:
            continue
        timings.seconds = clock() - began
        return timings


def _time_pair(
    dense: Runner, pruned: Runner, feeds: dict[str, Array], dense_first: bool
) -> tuple[float, float]:
    order = [(0, dense), (1, pruned)]
    ms = [0.0, 0.0]
    for slot, runner in order if dense_first else order[::-1]:
        start = clock()
        runner.run(feeds)
        ms[slot] = (clock() - start) * 1000.0
    return ms[0], ms[1]


@dataclass(frozen=True)
class MedianInterval:
    median: float
    low: float | None  # None when too few values for a 95% interval
    high: float | None

    @property
    def relative_half_width(self) -> float | None:
        if self.low is None or self.high is None or self.median <= 0:
            return None
        return (self.high - self.low) / 2 / self.median

    def rounded(self, digits: int) -> MedianInterval:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, digits)

        return MedianInterval(round(self.median, digits), r(self.low), r(self.high))

    def bounds(self) -> list[float] | None:
        return None if self.low is None or self.high is None else [self.low, self.high]


def median_interval(values: Sequence[float]) -> MedianInterval:
    """The sample median and its distribution-free 95% interval [x(k), x(n+1-k)] (the
    sign-test interval; Conover, Practical Nonparametric Statistics, 3rd ed., §3.2)."""
    if not values:
        return MedianInterval(math.nan, None, None)
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    median = float(np.median(ordered))
    k = interval_rank(len(ordered))
    if k is None:
        return MedianInterval(median, None, None)
    return MedianInterval(median, float(ordered[k - 1]), float(ordered[len(ordered) - k]))


@cache
def interval_rank(n: int) -> int | None:
    """The largest k with P(B < k) <= 2.5% for B ~ Binomial(n, 1/2): then [x(k), x(n+1-k)]
    covers the median with probability 1 - 2 P(B < k) >= 95%. None when n < 6."""
    alpha = (1 - CONFIDENCE) / 2
    if n > _EXACT_RANKS_UP_TO:  # normal approximation, Conover eq. 3.2.4
        return max(1, math.floor((n - _Z * math.sqrt(n)) / 2))
    log_half_n, below, k = -n * math.log(2.0), 0.0, 0
    while True:  # below = P(B < k), summed in log space (2^-n underflows past n = 1074)
        log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        pmf = math.exp(log_choose + log_half_n)
        if below + pmf > alpha:
            return k if k >= 1 else None
        below += pmf
        k += 1


def verdict(speedup: MedianInterval) -> str:
    """'faster' / 'slower' only when the interval excludes 1.0: a 1.01x inside the noise is
    'within noise', not a gain."""
    if speedup.low is None or speedup.high is None:
        return "too few iterations"
    if speedup.low > 1.0:
        return "faster"
    if speedup.high < 1.0:
        return "slower"
    return "within noise"


def _summary(times_ms: list[float]) -> dict[str, Any]:
    interval = median_interval(times_ms).rounded(4)
    return {
        "p50": interval.median,
        "p95": round(float(np.percentile(times_ms, 95)), 4),
        "ci95": interval.bounds(),
    }


def _note(results: list[dict[str, Any]]) -> str | None:
    """The no-speedup note once some batch size was measured well enough to say so."""
    verdicts = {r["verdict"] for r in results}
    if "faster" in verdicts or not verdicts - {"too few iterations"}:
        return None
    return NO_SPEEDUP_NOTE


def _warnings(results: list[dict[str, Any]]) -> list[str]:
    return [
        f"batch {r['batch_size']}: {r['iterations']} iterations in the budget are too few for "
        "a 95% interval (6 are needed), so the speedup is not judged; raise latency.budget_s "
        "or latency.iterations"
        for r in results
        if r["verdict"] == "too few iterations"
    ]
