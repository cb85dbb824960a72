"""Streaming statistics of layer inputs: memory is one accumulator per layer, whatever the
number of samples."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pruning.calibration.capture import LayerInputs
from pruning.calibration.dataset import CalibrationData


def column_sq_norms(
    inputs: LayerInputs, names: Sequence[str], data: CalibrationData
) -> dict[str, torch.Tensor]:
    """``||x_j||_2^2`` per input column of each layer, over every calibration token."""
    capture = inputs.open(names)
    sums: dict[str, torch.Tensor] = {}
    for feeds, _ in data.batches():
        for name, x in capture(feeds).items():
            rows = inputs.geometry[name].rows(x).double()
            part = rows.pow(2).sum(0)
            sums[name] = sums[name] + part if name in sums else part
    return sums


def input_hessian(inputs: LayerInputs, name: str, data: CalibrationData) -> torch.Tensor:
    """``H = 2 X X^T / n`` of one layer's inputs (SparseGPT, Frantar & Alistarh 2023, sec. 3),
    the Hessian of the layerwise squared error ``||W X - W' X||^2``, with current weights."""
    capture = inputs.open([name])
    geometry = inputs.geometry[name]
    gram: torch.Tensor | None = None
    tokens = 0
    for feeds, _ in data.batches():
        rows = geometry.rows(capture(feeds)[name])
        part = rows.T @ rows
        gram = part if gram is None else gram + part
        tokens += rows.shape[0]
    assert gram is not None  # CalibrationData holds at least one sample
    return gram * (2.0 / tokens)
