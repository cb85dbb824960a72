"""A net where weight size and loss disagree: the case a loss-based channel ranking exists for."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.engine.factories import make_mlp

LOUD = 8  # hidden features with large weights whose output the classifier ignores


def mlp_with_loud_but_ignored_features() -> nn.Module:
    """32 -> 64 -> 10 where features 0..7 have 5x larger weights than the rest, and the
    classifier multiplies them by ~0: L1 keeps them first, the loss does not need them."""
    net = make_mlp()
    with torch.no_grad():
        net[0].weight[:LOUD] *= 5.0
        net[2].weight[:, :LOUD] *= 1e-4
    return net


def loud_rows_kept(first_weight: np.ndarray) -> int:
    """First-layer rows (output features) as big as the loud ones: how many survived."""
    dense = mlp_with_loud_but_ignored_features()[0].weight.detach().numpy()
    threshold = np.abs(dense[LOUD:]).sum(axis=1).max()
    return int((np.abs(first_weight).sum(axis=1) > threshold).sum())


def features(samples: int = 24) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((samples, 32)).astype(np.float32)
