"""Search the pruning ratio that reaches a target: a speedup measured in ONNX Runtime at the
user's batch sizes, or a fraction of the dense FLOPs or parameters kept.

Bisection over the ratio in (0, max]: the smallest ratio that meets the target is kept (the
least pruning that does, so the best fidelity). Every probe is reported as the curve; when
even ``max`` misses, the result at ``max`` is returned and the report says how close it got.
Speedups are noisy: each probe times dense and pruned runs interleaved and takes the median.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from pruning.models.onnx_model import session_for
from pruning.structured.flops import count_flops
from pruning.structured.onnx_channels import ChannelPruning, parameter_count

Feeds = Mapping[str, Any]
STEPS = 6  # bisection probes after the one at the maximum ratio


@dataclass(frozen=True)
class Target:
    kind: str  # "speedup" | "flops" | "parameters"
    value: float  # a speedup (> 1), or the fraction of the dense count kept (< 1)

    def met(self, reached: float) -> bool:
        return reached >= self.value if self.kind == "speedup" else reached <= self.value


def search(
    prune: Callable[[float], ChannelPruning],
    dense: onnx.ModelProto,
    target: Target,
    max_ratio: float,
    feeds: Sequence[Feeds],
    threads: int = 1,
) -> tuple[ChannelPruning, dict[str, Any]]:
    """``feeds``: one batch per batch size (a speedup is the smallest over them)."""
    measure = _measure(dense, target, feeds, threads)
    curve: list[dict[str, Any]] = []

    def probe(ratio: float) -> tuple[ChannelPruning, float]:
        result = prune(ratio)
        reached = measure(result.proto)
        curve.append({"ratio": round(ratio, 4), target.kind: round(reached, 4)})
        return result, reached

    best, reached = probe(max_ratio)
    best_ratio = max_ratio
    if target.met(reached):
        low, high = 0.0, max_ratio
        for _ in range(STEPS):
            middle = (low + high) / 2
            result, value = probe(middle)
            if target.met(value):
                high, best, best_ratio, reached = middle, result, middle, value
            else:
                low = middle
    report = {
        "kind": target.kind,
        "value": target.value,
        "met": target.met(reached),
        "reached": round(reached, 4),
        "ratio": round(best_ratio, 4),
        "max_ratio": max_ratio,
        "curve": sorted(curve, key=lambda p: p["ratio"]),
        "how": _HOW[target.kind],
    }
    return best, report


_HOW = {
    "speedup": "median over interleaved runs of dense_ms / pruned_ms in ONNX Runtime at each "
    "batch size of latency.batch_sizes; the smallest over batch sizes",
    "flops": "MatMul/Gemm/Conv FLOPs of the pruned model / the dense model's, at the first "
    "batch size",
    "parameters": "parameters of the pruned model / the dense model's",
}


def _measure(
    dense: onnx.ModelProto, target: Target, feeds: Sequence[Feeds], threads: int
) -> Callable[[onnx.ModelProto], float]:
    if target.kind == "parameters":
        before = parameter_count(dense)
        return lambda proto: parameter_count(proto) / before
    if target.kind == "flops":
        flops = count_flops(dense, feeds[0]) or 1
        return lambda proto: count_flops(proto, feeds[0]) / flops
    dense_session = session_for(dense.SerializeToString(), threads=threads)
    return lambda proto: min(
        speedup(dense_session, session_for(proto.SerializeToString(), threads=threads), f)
        for f in feeds
    )


def speedup(dense: Any, pruned: Any, feeds: Feeds, budget_s: float = 1.0) -> float:
    """Median of dense_ms / pruned_ms over interleaved runs (after 3 warm-up runs each)."""
    for _ in range(3):
        dense.run(None, dict(feeds))
        pruned.run(None, dict(feeds))
    ratios: list[float] = []
    end = time.perf_counter() + budget_s
    while len(ratios) < 7 or (time.perf_counter() < end and len(ratios) < 200):
        a = time.perf_counter()
        dense.run(None, dict(feeds))
        b = time.perf_counter()
        pruned.run(None, dict(feeds))
        c = time.perf_counter()
        ratios.append((b - a) / max(c - b, 1e-9))
    return float(np.median(ratios))
