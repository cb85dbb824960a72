"""Statistics of the dense model's layer inputs on the calibration data, taken once per job
and shared by every allocation a search asks for: per input column ``||x_j||^2`` (OWL's
outlier scores, the sensitivity probe's mask) and ``X^T X`` (the probe's output error)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pruning.calibration.capture import LayerInputs
from pruning.calibration.dataset import CalibrationData
from pruning.calibration.stats import gram, sq_norms
from pruning.tensors import FloatArray


@dataclass(frozen=True)
class DenseStatistics:
    sq_norms: dict[str, FloatArray]  # layer -> ||x_j||^2 per input column
    grams: dict[str, torch.Tensor]  # layer -> X^T X (float32, CPU); empty unless asked


def dense_statistics(
    inputs: LayerInputs, names: Sequence[str], data: CalibrationData, with_grams: bool
) -> DenseStatistics:
    """One pass of the calibration batches through the dense model for every layer."""
    norms: dict[str, torch.Tensor] = {}
    grams: dict[str, torch.Tensor] = {}
    capture = inputs.open(list(names))
    for feeds, _ in data.batches():
        for name, x in capture(feeds).items():
            rows = inputs.geometry[name].rows(x)
            part = sq_norms([rows])
            norms[name] = norms[name].add_(part) if name in norms else part
            if with_grams:
                g = gram([rows])
                grams[name] = grams[name].add_(g) if name in grams else g
    return DenseStatistics({n: v.numpy().astype(np.float64) for n, v in norms.items()}, grams)
