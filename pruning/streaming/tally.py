"""The report's figures, counted while each tensor is written: the census of the saved
model (``pruning.report.census`` reads them back from the file), the storage report's
per-tensor lines and the magnitude histogram, with no tensor kept once it is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pruning.formats import encodings as enc
from pruning.formats.storage import layer_storage
from pruning.html.magnitudes import BINS, Counts, MagnitudeHistogram
from pruning.models.base import Array
from pruning.report import ArtifactCensus, LayerStats, PrunedLayers

CHUNK = 1 << 20  # elements binned at a time: the |w| temporary stays a few MiB
# Above this many pruned elements the histogram bins every k-th slice only (a systematic
# sample, counts scaled up), and says so: binning costs ~5 ns per element twice (before and
# after), which for a 7B model would outweigh the pruning's own I/O.
EXACT_ELEMENTS = 1 << 26


@dataclass
class _Bins:
    bins: np.ndarray[Any, np.dtype[np.float64]] = field(
        default_factory=lambda: np.zeros(BINS, np.float64)
    )
    zeros: float = 0.0
    total: int = 0

    def add(self, values: Array, top: float, every: int) -> None:
        """Bin every ``every``-th slice of ``values``; a sample is scaled to the tensor."""
        flat = values.reshape(-1)
        counts, zeros, binned = np.zeros(BINS, np.float64), 0, 0
        for start in range(0, flat.size, CHUNK * every):
            part = flat[start : start + CHUNK]
            more, more_zeros = _bin(part, top)
            counts += more
            zeros += more_zeros
            binned += part.size
        scale = flat.size / binned if binned else 0.0
        self.bins += counts * scale
        self.zeros += zeros * scale
        self.total += int(flat.size)

    def counts(self) -> Counts:
        return Counts([round(c) for c in self.bins], round(self.zeros), self.total)


@dataclass
class Tally:
    """``top``: the largest |w| of the pruned tensors before pruning (the histogram's range)."""

    top: float
    layers: dict[str, LayerStats] = field(default_factory=dict)
    storage: dict[str, dict[str, Any]] = field(default_factory=dict)
    total: int = 0
    zeros: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # every parameter, for skipped ones
    _before: _Bins = field(default_factory=_Bins)
    _after: _Bins = field(default_factory=_Bins)

    every: int = 1  # histogram: bin one slice in `every` (see EXACT_ELEMENTS)

    def pruned(self, name: str, before: Array, after: Array) -> None:
        nonzeros = int(np.count_nonzero(after))
        shape = tuple(int(d) for d in after.shape)
        self.layers[name] = LayerStats(name, list(shape), int(after.size), nonzeros)
        self.storage[name] = layer_storage(name, shape, after.dtype, enc.count_nonzero_bits(after))
        self._count(name, after, nonzeros)
        top = self.top if self.top > 0 else 1.0
        if after.dtype.kind in "biuf" and after.size:
            self._before.add(before, top, self.every)
            self._after.add(after, top, self.every)

    def other(self, name: str, values: Array) -> None:
        """A parameter the job does not prune: counted as saved, unchanged."""
        self._count(name, values, int(np.count_nonzero(values)))

    def census(self, pruned: PrunedLayers) -> ArtifactCensus:
        missing = set(pruned.names) - set(self.layers)
        if missing:  # the write pass lost a tensor: a bug, not a user error
            raise RuntimeError(f"pruned tensors missing from the saved model: {sorted(missing)}")
        skipped = sum(self.sizes.get(s.name, 0) for s in pruned.skipped)
        return ArtifactCensus(
            [self.layers[n] for n in pruned.names],
            self.total,
            self.zeros,
            skipped,
            storage_layers=[self.storage[n] for n in pruned.names],
        )

    def histogram(self) -> MagnitudeHistogram:
        top = self.top if self.top > 0 else 1.0
        edges = [float(e) for e in np.linspace(0.0, top, BINS + 1)]
        note = None
        if self.every > 1:
            note = (
                f"Estimated, not counted: one slice of {CHUNK} weights in every {self.every} "
                "was binned and its counts scaled to its tensor."
            )
        return MagnitudeHistogram(edges, self._before.counts(), self._after.counts(), note)

    def _count(self, name: str, values: Array, nonzeros: int) -> None:
        self.sizes[name] = int(values.size)
        self.total += int(values.size)
        self.zeros += int(values.size) - nonzeros


def sampling_stride(elements: int) -> int:
    """Slices binned per slice kept, so that about ``EXACT_ELEMENTS`` are binned."""
    return max(1, -(-elements // EXACT_ELEMENTS))


def _bin(values: Array, top: float) -> tuple[np.ndarray[Any, np.dtype[np.int64]], int]:
    """Counts of the nonzero |values| in ``BINS`` equal bins of [0, top], and the zeros:
    ``uniform_counts`` by index arithmetic (about 4x faster than ``np.histogram``, which
    also corrects values within rounding of an edge)."""
    scaled = np.abs(values).astype(np.float32, copy=False)
    np.multiply(scaled, np.float32(BINS / top), out=scaled)
    np.minimum(scaled, BINS - 1, out=scaled)
    counts = np.bincount(scaled.astype(np.uint8), minlength=BINS)[:BINS].astype(np.int64)
    zeros = int(values.size - np.count_nonzero(values))
    counts[0] -= zeros
    return counts, zeros
