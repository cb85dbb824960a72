"""Magnitude pruning: the score of a weight is |w| (Han et al. 2015, "Learning both Weights
and Connections for Efficient Neural Networks"). Equivalent to Hessian-based saliency with
H = I: it minimises ||w - w_pruned||_2 for a given number of zeros."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from pruning.methods.base import SCORERS, IntArray, Scorer
from pruning.tensors import FloatArray, WeightTensor


@SCORERS.register
class MagnitudeScorer(Scorer):
    name: ClassVar[str] = "magnitude"
    position_free: ClassVar[bool] = True

    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        return np.abs(tensor.flat[start : start + out.size], out=out)

    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        return np.abs(tensor.flat[positions]).astype(self.score_dtype(tensor), copy=False)

    def zero_below(self, tensor: WeightTensor, threshold: np.floating[Any]) -> None:
        lam = _largest_below(float(threshold), tensor.values.dtype)
        if lam is None:
            return
        # One fused pass: hardshrink zeroes exactly the |w| <= lam, i.e. |w| < threshold,
        # in place (measured ~3x faster than score + compare + multiply).
        weights = torch.from_numpy(tensor.flat)
        torch.ops.aten.hardshrink.out(weights, lam, out=weights)


def _largest_below(threshold: float, dtype: np.dtype[Any]) -> float | None:
    """The largest value of ``dtype`` strictly below ``threshold`` (None when <= 0)."""
    if threshold <= 0.0:
        return None
    if np.isinf(threshold):
        return float(np.finfo(dtype).max)
    nearest = np.array(threshold).astype(dtype)[()]
    if float(nearest) < threshold:
        return float(nearest)
    return float(np.nextafter(nearest, np.array(-np.inf, dtype)))
