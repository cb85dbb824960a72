"""Channel pruning of TorchScript: the output channels are zeroed, not removed.

A TorchScript archive is code; shrinking a layer safely needs every reader of its outputs,
which the archive does not state as data. So the channels of lowest importance (L1/L2 norm or
Taylor) of each selected layer are zeroed (same shapes, valid model, no speedup), and the
report says so. The last selected layer is left dense: its outputs are taken to be the
model's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pruning.structured.importance import Importance, channel_scores, channels_to_keep
from pruning.tensors import WeightTensor


def zero_channels(
    tensors: Sequence[WeightTensor], sparsity: float, importance: Importance
) -> list[dict[str, Any]]:
    outcomes = []
    for index, tensor in enumerate(tensors):
        rows = tensor.values.reshape(tensor.values.shape[0], -1)
        channels = rows.shape[0]
        if index == len(tensors) - 1:
            reason = "last layer: its channels are taken to be the model's outputs"
            outcomes.append(_outcome(tensor, channels, channels, reason))
            continue
        keep = channels_to_keep(channel_scores(importance, tensor.name, rows), sparsity)
        drop = np.setdiff1d(np.arange(channels), keep)
        rows[drop] = 0
        outcomes.append(_outcome(tensor, channels, int(keep.size), None))
    return outcomes


def _outcome(tensor: WeightTensor, channels: int, kept: int, reason: str | None) -> dict[str, Any]:
    return {
        "layers": [tensor.name],
        "channels": channels,
        "kept": kept,
        "pruned": kept < channels,
        "zeroed_not_removed": True,
        "reason": reason,
    }
