"""Physically smaller TorchScript for the standard chain: an ``nn.Sequential`` of Conv1d/2d
(group 1), Linear, BatchNorm1d/2d, Flatten, pooling and activations. Each Conv/Linear but the
last loses its weakest output channels; the BatchNorm after it and the next Conv/Linear's
inputs (a block of H*W features per channel after a Flatten) are cut to match. Anything else
is not shrunk here (the caller zeroes channels instead)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from pruning.errors import UnsupportedModel
from pruning.structured.importance import Importance, channel_scores, channels_to_keep

LAYERS = ("Conv1d", "Conv2d", "Linear")
NORMS = ("BatchNorm1d", "BatchNorm2d")
PASSES = (
    *("ReLU", "ReLU6", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish", "Dropout"),
    *("Identity", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d"),
    *("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"),
)


@dataclass(frozen=True)
class ChainCut:
    layer: str  # the producing Conv/Linear's child name
    norm: str | None  # the BatchNorm right after it, if any
    consumer: str  # the next Conv/Linear
    block: int  # features per channel at the consumer (H*W after a Flatten, else 1)


def _kind(module: Any) -> str:
    return str(getattr(module, "original_name", type(module).__name__))


def shrink_sequential(
    module: torch.jit.ScriptModule,
    example: torch.Tensor,
    sparsity: float,
    importance: Importance,
    selected: Collection[str],
) -> list[dict[str, Any]] | None:
    """Shrink in place and return the groups, or None when the module is not such a chain."""
    plan = chain_cuts(module, example)
    if plan is None:
        return None
    children = dict(module.named_children())
    with torch.no_grad():
        dense_shape = module(example).shape
        outcomes = [_apply(children, cut, sparsity, importance, selected) for cut in plan]
        if module(example).shape != dense_shape:  # never hand back a model of another signature
            raise UnsupportedModel("shrinking the TorchScript layers changed the output shape")
    return outcomes


def chain_cuts(module: torch.jit.ScriptModule, example: torch.Tensor) -> list[ChainCut] | None:
    """Each Conv/Linear but the last with what its channels reach, or None when the module
    is not such a chain."""
    children = dict(module.named_children())
    kinds = {name: _kind(child) for name, child in children.items()}
    if _kind(module) != "Sequential" or any(
        k not in (*LAYERS, *NORMS, *PASSES, "Flatten") for k in kinds.values()
    ):
        return None
    if any(kinds[n] in LAYERS and int(getattr(c, "groups", 1)) != 1 for n, c in children.items()):
        return None
    return _plan(children, kinds, example)


def _plan(
    children: dict[str, Any], kinds: dict[str, str], example: torch.Tensor
) -> list[ChainCut] | None:
    shapes, x = {}, example
    with torch.no_grad():
        for name, child in children.items():
            shapes[name] = tuple(x.shape)  # the input each child sees
            x = child(x)
    names = list(children)
    layers = [n for n in names if kinds[n] in LAYERS]
    cuts = []
    for layer, consumer in pairwise(layers):
        between = names[names.index(layer) + 1 : names.index(consumer)]
        norms = [n for n in between if kinds[n] in NORMS]
        flat = [n for n in between if kinds[n] == "Flatten"]
        if len(norms) > 1 or len(flat) > 1:
            return None
        block = 1
        if flat:
            before = shapes[flat[0]]
            block = int(np.prod(before[2:], dtype=np.int64))
        elif kinds[consumer] == "Linear" and len(shapes[consumer]) != 2:
            return None
        cuts.append(ChainCut(layer, norms[0] if norms else None, consumer, block))
    return cuts


def _apply(
    children: dict[str, Any],
    cut: ChainCut,
    sparsity: float,
    importance: Importance,
    selected: Collection[str],
) -> dict[str, Any]:
    layer = children[cut.layer]
    weight = layer.weight.detach()
    channels = int(weight.shape[0])
    name = f"{cut.layer}.weight"
    outcome = {"layers": [name], "channels": channels, "kept": channels, "pruned": False}
    if name not in selected:
        return {**outcome, "reason": f"layer {name!r} is not selected by layers.include/exclude"}
    rows = weight.reshape(channels, -1).double().numpy()
    keep = torch.from_numpy(channels_to_keep(channel_scores(importance, name, rows), sparsity))
    _set(layer, "weight", weight[keep], parameter=True)
    if layer.bias is not None:
        _set(layer, "bias", layer.bias.detach()[keep], parameter=True)
    if cut.norm is not None:
        bn = children[cut.norm]
        for attr, is_param in (
            ("weight", True),
            ("bias", True),
            ("running_mean", False),
            ("running_var", False),
        ):
            if getattr(bn, attr, None) is not None:
                _set(bn, attr, getattr(bn, attr).detach()[keep], parameter=is_param)
    columns = (keep[:, None] * cut.block + torch.arange(cut.block)).reshape(-1)
    consumer = children[cut.consumer]
    _set(consumer, "weight", consumer.weight.detach()[:, columns], parameter=True)
    return {
        **outcome,
        "kept": int(keep.numel()),
        "pruned": int(keep.numel()) < channels,
        "reason": None,
    }


def _set(module: Any, attr: str, value: torch.Tensor, parameter: bool) -> None:
    value = value.contiguous().clone()
    setattr(module, attr, torch.nn.Parameter(value, requires_grad=False) if parameter else value)
