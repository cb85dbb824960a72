"""Which torch tensor of the onnx2pytorch conversion holds which ONNX initializer.

Bound once, before training, by the node that reads the initializer (the module named
``{op_type}_{first output}``, or the MatMul that onnx2pytorch fused with the Add after it) and
by value: exact equality in the same shape or, for 2-D weights, transposed. Within a node,
inputs and the module's tensors are matched in order, so BatchNormalization's scale, B, mean
and var land on weight, bias, running_mean and running_var even when values coincide.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from pruning.models.onnx_model import FLOAT_TYPES

CONSTANT = "read as a constant by the torch conversion (onnx2pytorch), so it has no gradient"
# Inputs onnx2pytorch reads from its constant buffers that are still learned affine parameters
# (normalisation scale and shift): they are turned into parameters so they train.
AFFINE_INPUTS: dict[str, tuple[int, ...]] = {"LayerNormalization": (1, 2)}


@dataclass(frozen=True)
class Binding:
    """The torch tensor holding initializer ``name``; ``transposed``: stored as its transpose."""

    name: str
    tensor: torch.Tensor
    transposed: bool

    def as_onnx(self) -> np.ndarray:
        value = self.tensor.detach()
        return (value.T if self.transposed else value).contiguous().numpy()


def bind_initializers(
    original: onnx.GraphProto, module: torch.nn.Module
) -> tuple[dict[str, Binding], dict[str, str]]:
    """Bindings of float initializers, and the float initializers left unbound with why."""
    converted: onnx.GraphProto = getattr(module, "onnx_model").graph  # noqa: B009
    inits = {i.name: i for i in original.initializer if i.data_type in FLOAT_TYPES}
    producer = {out: node for node in original.node for out in node.output}
    modules = dict(module.named_modules())
    bound: dict[str, Binding] = {}
    claimed: set[int] = set()
    for node in converted.node:
        owner = modules.get(f"{node.op_type}_{node.output[0]}")
        if owner is None:
            continue
        names = [n for n in _initializer_inputs(node, producer) if n in inits and n not in bound]
        candidates = list(_own_tensors(owner))
        for name in names:
            value = numpy_helper.to_array(inits[name])
            for tensor in candidates:
                if id(tensor) in claimed:
                    continue
                transposed = _equal(tensor, value)
                if transposed is not None:
                    bound[name] = Binding(name, tensor, transposed)
                    claimed.add(id(tensor))
                    break
    bound.update(_affine_constants(converted, module, inits, bound))
    frozen = {name: CONSTANT for name in inits if name not in bound}
    return bound, frozen


def _affine_constants(
    graph: onnx.GraphProto,
    module: torch.nn.Module,
    inits: dict[str, onnx.TensorProto],
    bound: dict[str, Binding],
) -> dict[str, Binding]:
    found: dict[str, Binding] = {}
    for node in graph.node:
        for index in AFFINE_INPUTS.get(node.op_type, ()):
            name = node.input[index] if index < len(node.input) else ""
            buffer = f"_initializer_{name.replace('.', '_')}"  # onnx2pytorch's naming
            if name not in inits or name in bound or name in found or buffer not in module._buffers:
                continue
            value = module._buffers.pop(buffer)
            assert value is not None
            parameter = torch.nn.Parameter(value.detach().clone())
            module.register_parameter(buffer, parameter)
            found[name] = Binding(name, parameter, False)
    return found


def _initializer_inputs(node: onnx.NodeProto, producer: dict[str, onnx.NodeProto]) -> list[str]:
    """The node's own inputs, then those of the original node producing its output when
    onnx2pytorch fused that node into it (MatMul + Add: the Add's bias)."""
    names = list(node.input)
    original = producer.get(node.output[0])
    if original is not None and original.op_type != node.op_type:
        names.extend(original.input)
    return names


def _own_tensors(owner: torch.nn.Module) -> Iterator[torch.Tensor]:
    """Parameters, then floating buffers (running statistics), of the node's module."""
    yield from owner.parameters()
    for name, buffer in owner.named_buffers():
        if buffer.is_floating_point() and not name.split(".")[-1].startswith("_initializer_"):
            yield buffer


def _equal(tensor: torch.Tensor, value: np.ndarray) -> bool | None:
    """False: equal as stored; True: equal transposed; None: not this tensor."""
    data = tensor.detach()
    ref = torch.from_numpy(np.array(value)).to(data.dtype)
    if tuple(data.shape) == tuple(ref.shape) and torch.equal(data, ref):
        return False
    if ref.dim() == 2 and tuple(data.shape) == tuple(ref.T.shape) and torch.equal(data, ref.T):
        return True
    return None
