"""Histograms of weight magnitudes before and after pruning, binned in numpy.

Both use the same uniform bins, so the gap pruning leaves at small magnitudes shows. Exact
zeros are counted apart: on a log axis they would vanish into the first bin.

Uniform bins are given to `np.histogram` as `bins=int, range=(lo, hi)`, which computes each
value's bin arithmetically, O(n); explicit edges make numpy sort every block of values
first (measured: 17 s of a 73 s report on a 384 MB model). The bins are the same either way,
up to the assignment of values that fall on an edge within rounding.
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
    note: str | None = None  # how the counts were got, when not by counting every weight


def magnitude_histogram(before: Tensors | None, after: Tensors | None) -> MagnitudeHistogram | None:
    """None when neither set of weights was given."""
    if not before and not after:
        return None
    top = max(_max_abs(before), _max_abs(after))
    top = top if top > 0 else 1.0
    edges = np.linspace(0.0, top, BINS + 1)
    return MagnitudeHistogram([float(e) for e in edges], _count(before, top), _count(after, top))


def uniform_counts(
    values: npt.NDArray[np.generic], top: float
) -> tuple[npt.NDArray[np.int64], int]:
    """Counts of the nonzero |values| in `BINS` equal bins of [0, top], and the exact zeros.
    Zeros land in the first bin of the histogram and are taken out of it again."""
    magnitudes = _magnitude(values)
    counts = np.histogram(magnitudes, bins=BINS, range=(0.0, top))[0].astype(np.int64)
    zeros = int(magnitudes.size - np.count_nonzero(magnitudes))
    counts[0] -= zeros
    return counts, zeros


def _magnitude(values: npt.NDArray[np.generic]) -> npt.NDArray[np.floating]:
    # float32 and wider keep their width (no float64 copy of a float32 model); half floats
    # become float32 so the bin edges keep their precision; integers become float64.
    array = np.asarray(values).reshape(-1)
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    elif array.dtype.itemsize < 4:
        array = array.astype(np.float32)
    return np.abs(array)


def _numeric(tensors: Tensors | None) -> Iterator[npt.NDArray[np.generic]]:
    # One tensor at a time: never a concatenated copy of the whole model.
    for array in (tensors or {}).values():
        if array.dtype.kind in "biuf" and array.size:
            yield array


def _max_abs(tensors: Tensors | None) -> float:
    # max and -min: two reductions, no |w| temporary.
    return max((max(float(np.max(a)), -float(np.min(a))) for a in _numeric(tensors)), default=0.0)


def _count(tensors: Tensors | None, top: float) -> Counts | None:
    if not tensors:
        return None
    bins = np.zeros(BINS, dtype=np.int64)
    zeros = total = 0
    for array in _numeric(tensors):
        counts, tensor_zeros = uniform_counts(array, top)
        bins += counts
        zeros += tensor_zeros
        total += array.size
    return Counts([int(c) for c in bins], zeros, total)
