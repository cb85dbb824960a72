"""A forward pass that also returns each pruned layer's output, for layer-wise distillation,
on the student and on its frozen copy alike.

ONNX trains through onnx2pytorch's eager modules: a forward hook on the module that holds
the weight sees the layer's output. TorchScript never calls submodules through Python, so
hooks do not fire (and cannot be registered): the inlined forward graph is given the output
of every ``aten::linear`` / convolution of a pruned weight as extra graph outputs, and runs
as a function of the module, with autograd, as the calibration capture does without it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from pruning.calibration.gradients import first_tensor
from pruning.calibration.torchscript_capture import return_tuple, weight_name
from pruning.models.base import ModelAdapter
from pruning.models.script_graph import inlined
from pruning.models.torchscript_model import TorchScriptModel
from pruning.training.trainable import Trainable

Taps = tuple[torch.Tensor, dict[str, list[torch.Tensor]]]


class Tapped(ABC):
    """``tap(module, args)``: the first output and, per matched weight, its layer's output
    at each use; ``layers`` are the weights matched."""

    layers: list[str]

    @abstractmethod
    def __call__(self, module: Any, args: Sequence[torch.Tensor]) -> Taps: ...


def taps(model: ModelAdapter, view: Trainable, names: Sequence[str]) -> Tapped:
    if isinstance(model, TorchScriptModel):
        return _ScriptTaps(model.module, names)
    return _HookTaps(view.module, {n: view.weights[n].tensor for n in names})


class _HookTaps(Tapped):
    def __init__(self, module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
        owners: dict[int, str] = {}
        for path, sub in module.named_modules():
            for tensor in [*sub.parameters(recurse=False), *sub.buffers(recurse=False)]:
                owners.setdefault(id(tensor), path)
        self.owner = {n: owners[id(t)] for n, t in weights.items() if id(t) in owners}
        self.layers = list(self.owner)

    def __call__(self, module: Any, args: Sequence[torch.Tensor]) -> Taps:
        found: dict[str, list[torch.Tensor]] = {name: [] for name in self.owner}
        subs = dict(module.named_modules())
        handles = [
            subs[path].register_forward_hook(
                lambda _m, _i, out, name=name: found[name].append(first_tensor(out))
            )
            for name, path in self.owner.items()
        ]
        try:
            out = first_tensor(module(*args))
        finally:
            for handle in handles:
                handle.remove()
        return out, found


class _ScriptTaps(Tapped):
    def __init__(self, module: torch.jit.ScriptModule, names: Sequence[str]) -> None:
        graph = inlined(module)
        wanted = set(names)
        self.uses: list[str] = []
        values = [next(graph.outputs())]
        for node in graph.nodes():
            name = weight_name(node)
            if name in wanted:
                self.uses.append(name)
                values.append(node.output())
        return_tuple(graph, values)
        self.function = torch._C._create_function_from_graph("shears_taps", graph)
        self.layers = list(dict.fromkeys(self.uses))

    def __call__(self, module: Any, args: Sequence[torch.Tensor]) -> Taps:
        out = self.function(module._c, *args)
        found: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers}
        for name, value in zip(self.uses, out[1:], strict=True):
            found[name].append(value)
        return first_tensor(out[0]), found
