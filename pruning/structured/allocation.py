"""How many heads and neurons each layer keeps: the same fraction everywhere (``uniform``), or
one ranking across the layers (``global``) of the scores ``rescale.unit_scores`` makes
comparable, so layers whose units matter little give more (Kwon et al. 2022 search a mask
under a global FLOPs constraint; a global ranking of normalized errors is the greedy form)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from pruning.structured.importance import channels_to_keep

Scores = Mapping[Any, npt.NDArray[np.float64]]  # layer key -> one score per unit
Kept = dict[Any, npt.NDArray[np.int64]]


def allocate(scores: Scores, sparsity: float, allocation: str) -> Kept:
    if allocation == "uniform":
        return {key: channels_to_keep(values, sparsity) for key, values in scores.items()}
    return _global(scores, sparsity)


def _global(scores: Scores, sparsity: float) -> Kept:
    """Remove the round(s * all units) lowest scores over all layers; every layer keeps its
    best unit (a layer with none left would cut the network)."""
    entries = [
        (float(value), key, unit)
        for key, values in scores.items()
        for unit, value in enumerate(values)
    ]
    total = len(entries)
    remove = round(sparsity * total)
    best = {key: int(np.argmax(values)) for key, values in scores.items()}
    removed: dict[Any, set[int]] = {key: set() for key in scores}
    for _, key, unit in sorted(entries, key=lambda e: e[0]):
        if remove <= 0:
            break
        if unit == best[key]:
            continue
        removed[key].add(unit)
        remove -= 1
    return {
        key: np.array([u for u in range(len(values)) if u not in removed[key]], dtype=np.int64)
        for key, values in scores.items()
    }
