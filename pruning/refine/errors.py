"""The layerwise reconstruction error: with ``D = W0 - W`` and ``G = X^T X`` of the layer's
inputs, ``||W0 X - W X||^2 = sum_i d_i^T G d_i`` (one term per output row)."""

from __future__ import annotations

import torch


def row_errors(dense: torch.Tensor, weights: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    d = dense - weights
    return ((d @ g) * d).sum(1)


def relative(dense: torch.Tensor, weights: torch.Tensor, g: torch.Tensor) -> float:
    """``||W0 X - W X||^2 / ||W0 X||^2``."""
    total = float(((dense @ g) * dense).sum())
    return float(row_errors(dense, weights, g).sum()) / total if total > 0 else 0.0
