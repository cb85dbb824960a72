"""A differentiable view of a model for gradient-based methods: a forward function over
torch inputs and, for each prunable weight, the torch parameter that holds it. TorchScript
uses its own parameters and autograd; ONNX a torch conversion of the graph."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pruning.errors import Unsupported
from pruning.models.base import ModelAdapter
from pruning.models.onnx_model import OnnxModel
from pruning.models.torch_graph import TorchParameter, onnx_to_torch
from pruning.models.torchscript_model import TorchScriptModel
from pruning.tensors import WeightTensor


@dataclass(frozen=True)
class Differentiable:
    forward: Callable[[list[torch.Tensor]], torch.Tensor]  # the first output
    parameters: dict[str, TorchParameter]  # prunable weight name -> its parameter


def differentiable(
    model: ModelAdapter, tensors: Sequence[WeightTensor], input_names: Sequence[str]
) -> Differentiable:
    if isinstance(model, OnnxModel):
        required = [t.name for t in tensors]
        module, params = onnx_to_torch(model.proto, model.prunable(), required)
    elif isinstance(model, TorchScriptModel):
        module = model.module
        own = dict(module.named_parameters())
        params = {t.name: TorchParameter(own[t.name], False) for t in tensors}
    else:
        raise Unsupported(f"gradients are not available for {model.format} models")
    for p in module.parameters():
        p.requires_grad_(False)
    for name in (t.name for t in tensors):
        params[name].parameter.requires_grad_(True)

    def forward(args: list[torch.Tensor]) -> torch.Tensor:
        return first_tensor(module(*args))

    return Differentiable(forward, {t.name: params[t.name] for t in tensors})


def first_tensor(out: Any) -> torch.Tensor:
    """The model's first output as a tensor, through nested tuples, lists and dicts."""
    while isinstance(out, list | tuple):
        out = out[0]
    if isinstance(out, dict):
        return first_tensor(next(iter(out.values())))
    if not isinstance(out, torch.Tensor):
        raise Unsupported(
            "the model's first output is not a tensor; gradients (training, loss-based "
            "scores) need one"
        )
    return out
