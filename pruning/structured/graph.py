"""An index over one ONNX graph for channel surgery: constants (initializers and Constant
nodes) by name, how often each tensor is read, and shapes from ONNX shape inference."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

Array = npt.NDArray[Any]
Dims = list[int | None]


class OnnxGraph:
    """Reads and rewrites constants of ``proto`` in place, keeping their names."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.proto = proto
        _materialise_identities(proto.graph)
        self.nodes = list(proto.graph.node)
        _untie_small_constants(proto.graph, self.nodes)
        self._inits = {i.name: i for i in proto.graph.initializer}
        self._const_nodes = {n.output[0]: n for n in self.nodes if n.op_type == "Constant"}
        self.uses = Counter(name for node in self.nodes for name in node.input if name)
        self.uses.update(o.name for o in proto.graph.output)
        self.outputs = {o.name for o in proto.graph.output}
        self._shapes = _inferred_shapes(proto)

    def constant(self, name: str) -> Array | None:
        if name in self._inits:
            return np.array(numpy_helper.to_array(self._inits[name]))  # to_array is read-only
        node = self._const_nodes.get(name)
        value = next((a for a in node.attribute if a.name == "value"), None) if node else None
        return np.array(numpy_helper.to_array(value.t)) if value is not None else None

    def set_constant(self, name: str, array: Array) -> None:
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        if name in self._inits:
            self._inits[name].CopyFrom(tensor)
            return
        node = self._const_nodes[name]
        value = next(a for a in node.attribute if a.name == "value")
        value.t.CopyFrom(tensor)

    def is_constant(self, name: str) -> bool:
        return name in self._inits or name in self._const_nodes

    def shape(self, name: str) -> Dims | None:
        return self._shapes.get(name)


def attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def set_int_attribute(node: onnx.NodeProto, name: str, value: int) -> None:
    for attr in node.attribute:
        if attr.name == name:
            attr.i = value
            return
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _inferred_shapes(proto: onnx.ModelProto) -> dict[str, Dims]:
    inferred = onnx.shape_inference.infer_shapes(proto)
    graph = inferred.graph
    shapes: dict[str, Dims] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor = value.type.tensor_type
        if value.type.HasField("tensor_type") and tensor.HasField("shape"):
            shapes[value.name] = [
                d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
            ]
    for init in proto.graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
    return shapes


def _untie_small_constants(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """Give every reader its own copy of a shared vector initializer. torch.onnx.export merges
    equal constants, so fresh BatchNorm layers share one `weight` of ones; cut per group, each
    needs its own. Matrices stay shared (a tied weight is never cut)."""
    small = {i.name: i for i in graph.initializer if len(i.dims) <= 1}
    seen: Counter[str] = Counter()
    for node in nodes:
        for position, name in enumerate(node.input):
            if name not in small:
                continue
            seen[name] += 1
            if seen[name] > 1:
                copy = onnx.TensorProto()
                copy.CopyFrom(small[name])
                copy.name = f"{name}.shears_copy{seen[name] - 1}"
                graph.initializer.append(copy)
                node.input[position] = copy.name


def _materialise_identities(graph: onnx.GraphProto) -> None:
    """torch.onnx.export writes a parameter equal to another as ``Identity(other)``; make it
    an initializer of its own, so it can be cut on its own."""
    inits = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep = []
    for node in graph.node:
        source = node.input[0] if node.op_type == "Identity" and node.input else None
        if source in inits and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[source])
            copy.name = node.output[0]
            graph.initializer.append(copy)
        else:
            keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
