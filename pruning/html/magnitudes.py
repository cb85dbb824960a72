"""Histograms of weight magnitudes before and after pruning, binned in numpy.

Both use the same bins, so the gap pruning leaves at small magnitudes shows. Exact zeros
are counted apart: on a log axis they would vanish into the first bin.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Tensors = Mapping[str, npt.NDArray[np.generic]]
BINS = 48


@dataclass(frozen=True)
class Counts:
    bins: list[int]  # nonzero |w| per bin
    zeros: int
    total: int


@dataclass(frozen=True)
class MagnitudeHistogram:
    edges: list[float]
    before: Counts | None  # None when those weights were not given
    after: Counts | None


def magnitude_histogram(before: Tensors | None, after: Tensors | None) -> MagnitudeHistogram | None:
    """None when neither set of weights was given."""
    if not before and not after:
        return None
    top = max(_max_abs(before), _max_abs(after))
    edges = np.linspace(0.0, top if top > 0 else 1.0, BINS + 1)
    return MagnitudeHistogram(
        [float(e) for e in edges], _count(before, edges), _count(after, edges)
    )


def _magnitudes(tensors: Tensors | None) -> Iterator[npt.NDArray[np.float64]]:
    # One tensor at a time: never a concatenated copy of the whole model.
    for array in (tensors or {}).values():
        if array.dtype.kind in "biuf" and array.size:
            yield np.abs(np.asarray(array, dtype=np.float64)).reshape(-1)


def _max_abs(tensors: Tensors | None) -> float:
    return max((float(m.max()) for m in _magnitudes(tensors)), default=0.0)


def _count(tensors: Tensors | None, edges: npt.NDArray[np.float64]) -> Counts | None:
    if not tensors:
        return None
    bins = np.zeros(len(edges) - 1, dtype=np.int64)
    zeros = total = 0
    for m in _magnitudes(tensors):
        bins += np.histogram(m[m > 0], bins=edges)[0]
        zeros += int(np.count_nonzero(m == 0))
        total += m.size
    return Counts([int(c) for c in bins], zeros, total)
