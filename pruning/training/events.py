"""What one pruning event of a schedule asks of each granularity (issue 17).

A schedule gives event k a sparsity target s_k on the way to the spec's. Unstructured
pruning zeroes s_k of the weights. N:M ramps the zeros of every group of m: event k keeps
the pattern ``z_k:m`` with z_k the whole number of zeros nearest s_k * m (never above n), so
2:4 goes 0:4, 1:4, 2:4; each event's mask contains the last one's, so it stays valid and the
last event leaves exactly n:m. Channel pruning zeroes s_k of the channels of every group
(masked, same shapes, so training goes on) and cuts them once training ends.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from pruning.spec import PruneSpec


@dataclass(frozen=True)
class EventTarget:
    spec: PruneSpec | None  # the spec one pruning pass runs with; None: nothing to zero yet
    details: dict[str, Any]  # what the report's event entry says beyond the sparsity reached


def event_target(spec: PruneSpec, target: float) -> EventTarget:
    if spec.granularity == "n:m":
        assert spec.nm is not None
        n, m = spec.nm
        zeros = nm_zeros(target, n, m)
        details: dict[str, Any] = {"zeros_per_group": zeros, "pattern": f"{zeros}:{m}"}
        if zeros == 0:
            return EventTarget(None, details)
        return EventTarget(dataclasses.replace(spec, sparsity=zeros / m, nm=(zeros, m)), details)
    event = dataclasses.replace(spec, sparsity=target)
    if spec.granularity == "channel":
        return EventTarget(event, {"channel_sparsity": round(target, 6)})
    return EventTarget(event, {})


def nm_zeros(target: float, n: int, m: int) -> int:
    """A group holds whole zeros: the nearest count to ``target * m``, at most n (the final
    target n/m gives n; the half-up rounding keeps a float just under it from giving n - 1)."""
    return min(n, math.floor(target * m + 0.5))


def channel_counts(structure: dict[str, Any] | None) -> dict[str, Any]:
    """Channels zeroed by a channel event, over the groups it may prune (not those left
    dense for a reason, such as reaching the model's output)."""
    groups = (structure or {}).get("groups")
    if not groups:
        return {}
    prunable = [g for g in groups if g.get("reason") is None]
    total = sum(int(g["channels"]) for g in prunable)
    kept = sum(int(g["kept"]) for g in prunable)
    return {"channels": {"zeroed": total - kept, "total": total}}
