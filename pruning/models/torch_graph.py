"""An ONNX graph as a differentiable torch module (onnx2pytorch 0.6.0), for methods that need
gradients (OBD). Only gradients are taken from it: pruned weights are written back into the
original ONNX initializers, so the returned model is the uploaded graph with new values.

onnx2pytorch names the module of each node ``{op_type}_{first output}`` and stores Conv and
Gemm weights as parameters (MatMul and Gemm with ``transB=0`` transposed, as ``nn.Linear``);
an operator it cannot convert is reported as ``UnsupportedOperator`` naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import onnx
import torch
from onnx import numpy_helper

from pruning.errors import UnsupportedOperator
from pruning.tensors import WeightTensor


@dataclass(frozen=True)
class TorchParameter:
    """The torch parameter holding an ONNX weight; ``transposed``: stored as its transpose."""

    parameter: torch.Tensor
    transposed: bool

    def gradient_as_weight(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.T if self.transposed else grad


def onnx_to_torch(
    proto: onnx.ModelProto,
    weights: Sequence[WeightTensor],
    required: Collection[str] | None = None,
) -> tuple[torch.nn.Module, dict[str, TorchParameter]]:
    """The converted module (current weight values) and the parameter behind each weight.
    ``required`` (default: all of ``weights``) must each have one: a weight the spec leaves
    out needs no gradient, so it must not stop the job."""
    current = onnx.ModelProto()
    current.CopyFrom(proto)
    inits = {init.name: init for init in current.graph.initializer}
    for tensor in weights:
        inits[tensor.name].CopyFrom(numpy_helper.from_array(tensor.values, tensor.name))
    _drop_default_training_mode(current.graph)
    module = _convert(current)
    modules = dict(module.named_modules())
    found: dict[str, TorchParameter] = {}
    for node in current.graph.node:
        owner = modules.get(f"{node.op_type}_{node.output[0]}")
        param = getattr(owner, "weight", None)
        for tensor in weights:
            if tensor.name in node.input and isinstance(param, torch.nn.Parameter):
                found.setdefault(tensor.name, _match(param, tensor))
    needed = [t.name for t in weights] if required is None else list(required)
    missing = [name for name in needed if name not in found]
    if missing:
        raise UnsupportedOperator(
            f"weight {missing[0]!r} does not become a parameter in the torch conversion of the "
            "graph (onnx2pytorch), so it has no gradient; exclude it with layers.exclude"
        )
    return module.eval(), found


def _convert(proto: onnx.ModelProto) -> torch.nn.Module:
    from onnx2pytorch import ConvertModel

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module: torch.nn.Module = ConvertModel(proto, experimental=True)
    except NotImplementedError as exc:
        op = _failing_operator(proto)
        raise UnsupportedOperator(
            f"operator {op!r} cannot be converted to torch by onnx2pytorch 0.6.0 ({exc}); "
            "gradient-based methods such as 'obd' need that conversion: use 'wanda' or "
            "'sparsegpt' (activations only) or replace the operator"
        ) from exc
    return module


def _failing_operator(proto: onnx.ModelProto) -> str:
    """The op type of the first node onnx2pytorch cannot convert (it yields one per node)."""
    from onnx2pytorch.convert.operations import convert_operations

    nodes = list(proto.graph.node)
    done = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in convert_operations(proto.graph, _opset(proto)):
                done += 1
    except NotImplementedError:
        return str(nodes[min(done, len(nodes) - 1)].op_type)
    return "unknown"


def _opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)


def _drop_default_training_mode(graph: onnx.GraphProto) -> None:
    """``training_mode=0`` (BatchNormalization, opset 14+) is the default, inference, but
    onnx2pytorch refuses the attribute; without it the node means the same."""
    for node in graph.node:
        kept = [
            a
            for a in node.attribute
            if not (a.name == "training_mode" and onnx.helper.get_attribute_value(a) == 0)
        ]
        if len(kept) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(kept)


def _match(param: torch.nn.Parameter, tensor: WeightTensor) -> TorchParameter:
    # Square weights have both orientations' shape: the values tell which one was kept.
    same = tuple(param.shape) == tuple(tensor.values.shape) and torch.equal(
        param.detach(), torch.from_numpy(tensor.values).to(param.dtype)
    )
    return TorchParameter(param, not same)
