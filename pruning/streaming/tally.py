"""The report's figures, counted while each tensor is written: the census of the saved
model (``pruning.report.census`` reads them back from the file), the storage report's
per-tensor lines and the magnitude histogram, with no tensor kept once it is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pruning.formats import encodings as enc
from pruning.formats.storage import layer_storage
from pruning.html.magnitudes import BINS, Counts, MagnitudeHistogram, uniform_counts
from pruning.models.base import Array
from pruning.report import ArtifactCensus, LayerStats, PrunedLayers

CHUNK = 1 << 20  # elements binned at a time: the |w| temporary stays a few MiB


@dataclass
class _Bins:
    bins: np.ndarray[Any, np.dtype[np.int64]] = field(
        default_factory=lambda: np.zeros(BINS, np.int64)
    )
    zeros: int = 0
    total: int = 0

    def add(self, values: Array, top: float) -> None:
        flat = values.reshape(-1)
        for start in range(0, flat.size, CHUNK):
            counts, zeros = uniform_counts(flat[start : start + CHUNK], top)
            self.bins += counts
            self.zeros += zeros
        self.total += int(flat.size)

    def counts(self) -> Counts:
        return Counts([int(c) for c in self.bins], self.zeros, self.total)


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

    def pruned(self, name: str, before: Array, after: Array) -> None:
        nonzeros = int(np.count_nonzero(after))
        shape = tuple(int(d) for d in after.shape)
        self.layers[name] = LayerStats(name, list(shape), int(after.size), nonzeros)
        self.storage[name] = layer_storage(name, shape, after.dtype, enc.count_nonzero_bits(after))
        self._count(name, after, nonzeros)
        top = self.top if self.top > 0 else 1.0
        if after.dtype.kind in "biuf" and after.size:
            self._before.add(before, top)
            self._after.add(after, top)

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
        return MagnitudeHistogram(edges, self._before.counts(), self._after.counts())

    def _count(self, name: str, values: Array, nonzeros: int) -> None:
        self.sizes[name] = int(values.size)
        self.total += int(values.size)
        self.zeros += int(values.size) - nonzeros
