"""The dense model's outputs on the calibration samples, kept from a pass a method already
makes over them, so that the in-sample fidelity does not run the same forward again."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pruning.models.base import Array


@dataclass
class DenseOutputs:
    """The model's first output on the calibration batches, in order, from a forward a
    method made with the upload's weights (Wanda's one capture pass reads it beside the
    layer inputs). The in-sample fidelity then runs only the pruned artifact: the dense side
    is the upload's graph on the same samples, taken from that forward."""

    limit: int  # samples kept at most: those the fidelity compares
    batches: list[Array] = field(default_factory=list)
    _rows: int = field(default=0, init=False)

    def add(self, batch: Array) -> None:
        """Keep one forward's first output while fewer than ``limit`` samples are kept (a
        language model's logits take gigabytes for a few hundred samples)."""
        if self._rows < self.limit:
            self.batches.append(batch[: self.limit - self._rows])
            self._rows += len(batch)

    def first(self, samples: int) -> Array | None:
        """The first ``samples`` rows, or None when the pass did not cover them."""
        if not self.batches:
            return None
        joined = np.concatenate(self.batches)
        return joined[:samples] if joined.shape[0] >= samples else None
