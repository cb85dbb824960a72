"""Whole numbers of zeros per layer that add up to the budget exactly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def exact_counts(sizes: Sequence[int], fractions: Sequence[float], budget: int) -> list[int]:
    """Zeros per layer near ``fractions * sizes`` summing to ``budget``: floors, then the
    remaining zeros one each to the largest remainders (Hamilton's apportionment)."""
    n = np.asarray(sizes, np.int64)
    wanted = np.clip(np.asarray(fractions, np.float64), 0.0, 1.0) * n
    counts = np.minimum(np.floor(wanted).astype(np.int64), n)
    order = np.argsort(-(wanted - counts), kind="stable")
    left = int(budget - counts.sum())
    while left != 0:
        step = 1 if left > 0 else -1
        room = counts < n if step > 0 else counts > 0
        picks = [int(i) for i in order if room[i]][: abs(left)]
        if not picks:
            break
        counts[picks] += step
        left -= step * len(picks)
    return [int(c) for c in counts]


def shift_to_mean(
    raw: Sequence[float], sizes: Sequence[int], target: float, low: float, high: float
) -> list[float]:
    """``clip(raw + c, low, high)`` with the constant ``c`` whose size-weighted mean is
    ``target`` (bisection: the mean grows with ``c``)."""
    r = np.asarray(raw, np.float64)
    w = np.asarray(sizes, np.float64) / float(sum(sizes))

    def mean(c: float) -> float:
        return float(np.dot(w, np.clip(r + c, low, high)))

    lo, hi = low - float(r.max()) - 1.0, high - float(r.min()) + 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean(mid) < target else (lo, mid)
    return [float(x) for x in np.clip(r + (lo + hi) / 2, low, high)]


def cheapest(
    grids: Sequence[Sequence[float]],
    costs: Sequence[Sequence[float]],
    sizes: Sequence[int],
    budget: float,
) -> list[float]:
    """Per layer a sparsity on its piecewise-linear cost curve (``grids`` ascending) that
    minimises the summed cost with ``sum(size * sparsity) == budget``: every layer starts at
    its lowest point and the cheapest next step per pruned weight is taken until the budget
    is met, the last one in part (greedy on the marginal cost, Lagrangian-optimal for convex
    curves)."""
    chosen = [float(g[0]) for g in grids]
    left = budget - sum(n * s for n, s in zip(sizes, chosen, strict=True))
    position = [0] * len(grids)

    def slope(i: int) -> float:
        k = position[i]
        added = sizes[i] * (grids[i][k + 1] - grids[i][k])
        return (costs[i][k + 1] - costs[i][k]) / added if added > 0 else 0.0

    while left > 1e-9:
        open_ = [i for i in range(len(grids)) if position[i] + 1 < len(grids[i])]
        if not open_:
            break
        i = min(open_, key=slope)
        k = position[i]
        added = sizes[i] * (grids[i][k + 1] - grids[i][k])
        if added >= left:
            chosen[i] += left / sizes[i]
            break
        chosen[i] = float(grids[i][k + 1])
        position[i] += 1
        left -= added
    return chosen
