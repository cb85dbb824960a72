"""A compact mask: "scores below a threshold, plus the first few that tie with it".

Masks are never materialised for a whole model: a ``Cut`` is two numbers per tensor, and
applying it streams over the tensor once. Ties are broken by flat position (row-major), so a
cut is deterministic for the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pruning.methods.base import Scorer
from pruning.tensors import WeightTensor

CHUNK = 1 << 17  # elements per slice: 512 KiB of float32 scores, resident in L2
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Cut:
    """Prune every element scoring below ``threshold`` and the first ``ties`` scoring equal."""

    threshold: np.floating[Any]
    ties: int
    pruned: int

    @staticmethod
    def none() -> Cut:
        return Cut(np.float32(-np.inf), 0, 0)


def apply_cut(tensor: WeightTensor, scorer: Scorer, cut: Cut) -> None:
    """Write the cut's zeros into ``tensor`` (ties first: their scores are read unpruned)."""
    if cut.ties:
        _zero_first_ties(tensor, scorer, cut.threshold, cut.ties)
    if cut.pruned > cut.ties:
        scorer.zero_below(tensor, cut.threshold)


def dense_mask(tensor: WeightTensor, scorer: Scorer, cut: Cut) -> BoolArray:
    """The cut as a boolean array of the tensor's shape (True = pruned); for tests and tools."""
    scores = np.empty(tensor.numel, scorer.score_dtype(tensor))
    scorer.score(tensor, 0, scores)
    mask = scores < cut.threshold
    mask[np.flatnonzero(scores == cut.threshold)[: cut.ties]] = True
    return mask.reshape(tensor.values.shape)


def _zero_first_ties(
    tensor: WeightTensor, scorer: Scorer, threshold: np.floating[Any], count: int
) -> None:
    flat = tensor.flat
    scores = np.empty(min(CHUNK, flat.size), scorer.score_dtype(tensor))
    for start in range(0, flat.size, CHUNK):
        s = scorer.score(tensor, start, scores[: min(CHUNK, flat.size - start)])
        hits = np.flatnonzero(s == threshold)[:count]
        flat[start + hits] = 0
        count -= hits.size
        if count == 0:
            return
