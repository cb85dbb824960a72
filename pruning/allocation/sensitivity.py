"""Sensitivity allocation: each layer's relative output error on the calibration data,
``||(W - W_s) X||^2 / ||W X||^2 = tr(D G D^T) / tr(W G W^T)`` with ``G = X^T X`` of its dense
inputs, measured at a few sparsities ``s`` around the target with Wanda's per-row mask
(``|w| * ||x||``, the cheapest calibration-aware mask), then the allocation minimising the
summed error with the zeros of the target exactly (``budget.cheapest``). In the spirit of
the layerwise sensitivity scans of Han et al. 2015 sec. 4 and OBC's (Frantar & Alistarh
2022) database of per-layer errors, with the layer's own reconstruction error as the cost."""

from __future__ import annotations

import numpy as np
import torch

from pruning.calibration.geometry import split_rows
from pruning.tensors import FloatArray


def grid(target: float, spread: float, points: int) -> list[float]:
    """``points`` sparsities evenly over [target - spread, target + spread] within [0, 0.99],
    the target among them."""
    low, high = max(0.0, target - spread), min(0.99, target + spread)
    values = {round(float(v), 6) for v in np.linspace(low, high, points)} | {round(target, 6)}
    return sorted(values)


def output_error(matrix: FloatArray, sq_norms: FloatArray, g: torch.Tensor, s: float) -> float:
    """Relative output error of ``matrix`` (``[out, columns]``) pruned to ``s`` per row."""
    w = torch.from_numpy(np.asarray(matrix, np.float32))
    if s <= 0.0:
        return 0.0
    scores = w.abs() * torch.from_numpy(np.sqrt(sq_norms).astype(np.float32))[None, :]
    rows, cols = w.shape
    counts = torch.from_numpy(split_rows(rows, cols, s))
    ranks = torch.argsort(torch.argsort(scores, dim=1, stable=True), dim=1)
    pruned = ranks < counts[:, None]
    d = w * pruned
    dense = float(((w @ g) * w).sum())
    return float(((d @ g) * d).sum()) / dense if dense > 0 else 0.0
