"""The one thing a pruning method is asked: how important is each weight?

A ``Scorer`` reads a weight tensor and returns a score per element; low scores are pruned
first. Scores are produced a slice at a time into a buffer the caller owns, so selecting
over a whole model never holds more than one slice of scores (see ``pruning.masks``).
Methods that need data (Wanda's activation norms, OBD's Hessian diagonal) take it in their
constructor and still answer per slice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from pruning.method_registry import MethodRegistry
from pruning.tensors import FloatArray, WeightTensor

IntArray = npt.NDArray[np.int64]
ZERO_CHUNK = 1 << 17


class Scorer(ABC):
    """Importance of each element of a weight tensor."""

    name: ClassVar[str]
    # True when an element's score depends on its value alone, not on where it lies in the
    # tensor: a piece of a tensor can then be scored (and pruned) on its own.
    position_free: ClassVar[bool] = False

    def score_dtype(self, tensor: WeightTensor) -> np.dtype[Any]:
        """Float type the scores of ``tensor`` are computed in (float64 only for float64)."""
        return np.dtype(np.float64 if tensor.values.dtype == np.float64 else np.float32)

    @abstractmethod
    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        """Write the scores of ``tensor.flat[start : start + out.size]`` into ``out``."""

    @abstractmethod
    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        """Scores at the given flat positions (used to sample the score distribution)."""

    def zero_below(self, tensor: WeightTensor, threshold: np.floating[Any]) -> None:
        """Write zeros into every weight whose score is below ``threshold``."""
        flat = tensor.flat
        scores = np.empty(min(ZERO_CHUNK, flat.size), self.score_dtype(tensor))
        keep = np.empty(scores.size, np.bool_)
        for start in range(0, flat.size, ZERO_CHUNK):
            part = flat[start : start + ZERO_CHUNK]
            s = self.score(tensor, start, scores[: part.size])
            # Multiplying by the keep mask is branch-free (several times faster than a masked
            # store); adding 0.0 turns the -0.0 it leaves for negative weights into +0.0.
            np.multiply(part, np.greater_equal(s, threshold, out=keep[: part.size]), out=part)
            np.add(part, 0.0, out=part)


# The data-free methods' scorers by method name: each registers itself (``@SCORERS.register``).
SCORERS = MethodRegistry[Scorer]("data_free", Scorer, "pruning.methods.SCORERS")
