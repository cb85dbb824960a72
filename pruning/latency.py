"""Latency of the dense and the pruned artifact, measured the same way, interleaved."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pruning.errors import DataMismatch
from pruning.inputs import InputPlan
from pruning.models.base import Array, Runner
from pruning.spec import LatencySpec

NO_SPEEDUP = 1.1  # below this a speedup is within run-to-run noise on shared CPUs
NO_SPEEDUP_NOTE = (
    "Unstructured zeros gave no speedup: dense kernels multiply zeros like any other value, "
    "so unstructured sparsity saves storage, not time, unless a sparse kernel is used."
)


def measure_latency(
    dense: Runner,
    pruned: Runner,
    plan: InputPlan,
    spec: LatencySpec,
    runtime: str,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for index, batch_size in enumerate(spec.batch_sizes):
        if on_batch is not None:
            on_batch(index, batch_size)
        feeds = plan.feeds(batch_size, seed=0)
        if isinstance(feeds, str):
            skipped.append({"batch_size": batch_size, "reason": feeds})
            continue
        try:
            results.append(_measure(dense, pruned, feeds, spec, batch_size))
        except DataMismatch as exc:
            skipped.append({"batch_size": batch_size, "reason": exc.message})
    no_speedup = bool(results) and all(r["speedup"] < NO_SPEEDUP for r in results)
    return {
        "runtime": runtime,
        "threads": spec.threads,
        "warmup": spec.warmup,
        "iterations": spec.iterations,
        "execution": "sequential, one model at a time, dense and pruned runs interleaved",
        "inputs": plan.describe(),
        "results": results,
        "skipped": skipped,
        "note": NO_SPEEDUP_NOTE if no_speedup else None,
    }


def _measure(
    dense: Runner, pruned: Runner, feeds: dict[str, Array], spec: LatencySpec, batch_size: int
) -> dict[str, Any]:
    for _ in range(spec.warmup):
        dense.run(feeds)
        pruned.run(feeds)
    times: dict[str, list[float]] = {"dense": [], "pruned": []}
    for i in range(spec.iterations):
        # Alternate which model goes first so caches and clocks favour neither.
        order = [("dense", dense), ("pruned", pruned)]
        for name, runner in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            runner.run(feeds)
            times[name].append((time.perf_counter() - start) * 1000.0)
    dense_ms, pruned_ms = _summary(times["dense"]), _summary(times["pruned"])
    return {
        "batch_size": batch_size,
        "dense_ms": dense_ms,
        "pruned_ms": pruned_ms,
        "speedup": round(dense_ms["p50"] / pruned_ms["p50"], 3) if pruned_ms["p50"] else None,
    }


def _summary(times_ms: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(times_ms, [50, 95])
    return {"p50": round(float(p50), 4), "p95": round(float(p95), 4)}
