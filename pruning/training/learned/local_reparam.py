"""Local reparameterisation (Kingma et al. 2015) for sparse variational dropout.

With w ~ N(theta, sigma^2) per weight, a layer's pre-activation b = x·w is Gaussian,
N(x·theta, x^2·sigma^2), so it is sampled directly, with fresh noise per example and output
unit: the gradient's variance falls (no noise shared across the mini-batch) and one sample per
pre-activation costs one extra matmul or convolution of x^2 with sigma^2.

The trainable view computes x·theta itself (the method writes theta into the layer's weight);
a forward hook on the layer adds sqrt(x^2·sigma^2)·eps while the layer is in training mode.
That needs the layer's input, so it applies where the weight is an ``nn.Linear`` or an
``nn.Conv1d/2d/3d`` module's weight whose forward runs as a Python module call: every Gemm,
MatMul and Conv of onnx2pytorch's conversion of an ONNX graph. A compiled TorchScript module
calls its layers inside the compiled graph, where hooks do not run, so its weights (and any
other weight not found as such a layer) keep per-weight noise, sampled once per mini-batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

LINEAR = (torch.nn.Linear,)
CONVS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
VARIANCE_FLOOR = 1e-8  # keeps sqrt's gradient finite where every input of a unit is zero

# Given the layer and its input squared, the variance of its pre-activations.
Variance = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _linear(layer: torch.nn.Module, x2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    return F.linear(x2, sigma2)


def _conv(layer: torch.nn.Module, x2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    conv: Any = layer
    function = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[sigma2.dim() - 2]
    return function(x2, sigma2, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def reachable_layers(
    module: Any, weights: Mapping[str, torch.Tensor]
) -> dict[str, tuple[torch.nn.Module, Variance]]:
    """Per weight name, the layer whose forward a hook can extend, and how its variance is
    computed; weights not listed keep per-weight noise (see the module docstring)."""
    if isinstance(module, torch.jit.ScriptModule) or not isinstance(module, torch.nn.Module):
        return {}
    owner = {id(t): n for n, t in weights.items()}
    found: dict[str, tuple[torch.nn.Module, Variance]] = {}
    for layer in module.modules():
        name = owner.get(id(getattr(layer, "weight", None)))
        if name is None or name in found:
            continue
        if isinstance(layer, LINEAR):
            found[name] = (layer, _linear)
        elif isinstance(layer, CONVS) and getattr(layer, "padding_mode", "zeros") == "zeros":
            found[name] = (layer, _conv)
    return found


def attach(
    layers: Mapping[str, tuple[torch.nn.Module, Variance]],
    sigma2: Callable[[str], torch.Tensor],
) -> Callable[[], None]:
    """Adds the sampled noise to each layer's output in training mode; returns the detach.
    ``sigma2(name)`` is the weight's current variance (zero where the weight is dropped),
    differentiable in the method's log variances: the task loss trains them through it."""
    handles = []
    for name, (layer, variance) in layers.items():

        def hook(
            layer: torch.nn.Module,
            args: tuple[Any, ...],
            output: torch.Tensor,
            name: str = name,
            variance: Variance = variance,
        ) -> torch.Tensor:
            if not layer.training:
                return output
            x = args[0]
            var = variance(layer, x * x, sigma2(name).to(x.dtype))
            return output + torch.sqrt(var + VARIANCE_FLOOR) * torch.randn_like(output)

        handles.append(layer.register_forward_hook(hook))

    def detach() -> None:
        for handle in handles:
            handle.remove()

    return detach
