"""Weights already pruned go first at the next pruning event, whatever the method's scores:
a schedule's sparsity only grows, so an event adds zeros to those before it (random scores
would otherwise pick new weights and leave the old zeros, overshooting the target)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pruning.methods.base import IntArray, Scorer
from pruning.methods.magnitude import MagnitudeScorer
from pruning.tensors import FloatArray, WeightTensor


class ZerosFirst(Scorer):
    name: ClassVar[str] = "zeros_first"

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner

    def score_dtype(self, tensor: WeightTensor) -> np.dtype[Any]:
        return self.inner.score_dtype(tensor)

    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        scores = self.inner.score(tensor, start, out)
        scores[tensor.flat[start : start + scores.size] == 0] = -1.0  # below any score >= 0
        return scores

    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        scores = self.inner.score_at(tensor, positions)
        scores[tensor.flat[positions] == 0] = -1.0
        return scores


def zeros_first(scorer: Scorer) -> Scorer:
    """Magnitude already scores a zero lowest; other scorers are wrapped."""
    return scorer if isinstance(scorer, MagnitudeScorer) else ZerosFirst(scorer)
