"""The weights' NaN check, done while the global selection scores them.

``require_finite`` reads every weight once more before the selection's counting pass reads
them all again; on a model larger than the page cache each is a read of the model from disk.
Here the check rides on the scorer: each slice the selection scores is checked while it is
in the CPU's cache, and the largest |w| (the histogram's range) is kept on the way. Tensors
the selection never reads whole (sparsity 0 or 1, excluded layers) are checked afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from pruning.errors import InvalidModel
from pruning.methods.base import IntArray, Scorer
from pruning.streaming.mapped import MappedTensor
from pruning.tensors import FloatArray, WeightTensor

_SLICE = 1 << 20


class CheckingScorer(Scorer):
    """``inner``'s scores; every slice scored is checked finite first."""

    name: ClassVar[str] = "checking"

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner
        self.position_free = inner.position_free  # type: ignore[misc]
        self.top = 0.0  # largest |w| seen
        self._seen: dict[str, int] = {}  # elements checked, per tensor

    def score_dtype(self, tensor: WeightTensor) -> np.dtype[Any]:
        if isinstance(tensor, MappedTensor):  # asked of every tensor before the pass: its
            # values would be mapped, and read, one more time (a whole read of the model)
            dtype = tensor.region.dtype  # type: ignore[attr-defined]
            tensor = WeightTensor(tensor.name, tensor.op, np.empty(0, dtype), tensor.node)
        return self.inner.score_dtype(tensor)

    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        self._check(tensor, tensor.flat[start : start + out.size])
        return self.inner.score(tensor, start, out)

    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        if isinstance(tensor, MappedTensor):  # a sample: read its pages, not the tensor's
            with tensor.sparse_reads(positions):
                return self.inner.score_at(tensor, positions)
        return self.inner.score_at(tensor, positions)

    def zero_below(self, tensor: WeightTensor, threshold: np.floating[Any]) -> None:
        self.inner.zero_below(tensor, threshold)

    def finish(self, tensors: Iterable[WeightTensor]) -> float:
        """Check what the selection did not read whole; the largest |w| of ``tensors``."""
        for tensor in tensors:
            if self._seen.get(tensor.name, 0) < tensor.numel:
                flat = tensor.flat
                for start in range(0, flat.size, _SLICE):
                    self._check(tensor, flat[start : start + _SLICE])
        return self.top

    def _check(self, tensor: WeightTensor, part: FloatArray) -> None:
        if not part.size:
            return
        high, low = float(np.max(part)), float(np.min(part))
        if not (np.isfinite(high) and np.isfinite(low)):
            raise InvalidModel(
                f"weight {tensor.name!r} contains NaN or infinite values; "
                "fix the model (e.g. re-export a checkpoint from before training diverged)"
            )
        self.top = max(self.top, high, -low)
        self._seen[tensor.name] = self._seen.get(tensor.name, 0) + int(part.size)


def check_finite(tensors: Iterable[WeightTensor]) -> float:
    """Every weight of ``tensors`` finite, else ``InvalidModel``; their largest |w|."""
    return CheckingScorer(_Unscored()).finish(tensors)


class _Unscored(Scorer):
    """Scores nothing: ``check_finite`` only needs ``CheckingScorer``'s check."""

    name: ClassVar[str] = "unscored"

    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        return out

    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        return np.zeros(positions.size, np.float32)
