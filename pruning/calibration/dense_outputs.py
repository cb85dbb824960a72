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

    batches: list[Array] = field(default_factory=list)

    def first(self, samples: int) -> Array | None:
        """The first ``samples`` rows, or None when the pass did not cover them."""
        if not self.batches:
            return None
        joined = np.concatenate(self.batches)
        return joined[:samples] if joined.shape[0] >= samples else None
