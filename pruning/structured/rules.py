"""How channels flow through each operator: one rule per ONNX op type.

A rule reads the ``ChannelMap`` of its inputs, records the ``CutStep``s its parameters need,
and gives its outputs their maps; what it cannot follow safely it refuses, naming the node.
"""

from __future__ import annotations

import onnx

from pruning.structured.channels import FIXED, ChannelMap
from pruning.structured.dependency import (
    CutStep,
    Dependencies,
    Rule,
    groups_of,
    input_map,
    label,
    owned,
)
from pruning.structured.graph import OnnxGraph, attribute
from pruning.structured.layout_rules import concat, flatten, reshape

# Elementwise in one tensor: channel i of the output is channel i of the input.
UNARY = (
    *("Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Elu", "Selu", "Celu"),
    *("HardSigmoid", "HardSwish", "Softplus", "Softsign", "Gelu", "Mish", "Erf", "Identity"),
    *("Dropout", "Neg", "Abs", "Sqrt", "Exp", "Log", "Cast"),
)
POOLS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool")
BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow")


def conv(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    weight = graph.constant(node.input[1])
    cmap = input_map(deps, node)
    if weight is None:
        if cmap:
            deps.refuse(cmap.groups(), f"Conv {label(node)} has non-constant weights")
        return
    groups = int(attribute(node, "group", 1))
    if groups == 1:
        if cmap and owned(graph, deps, cmap, node, node.input[1]):
            deps.steps.append(CutStep(index, "in", cmap))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if graph.uses[node.input[1]] == 1 and (bias is None or graph.uses[bias] == 1):
            deps.maps[node.output[0]] = deps.new_source(
                node.input[1], index, int(weight.shape[0]), weight.ndim, 1
            )
        return
    depthwise = weight.shape[1] == 1 and groups == weight.shape[0]
    if (
        cmap
        and depthwise
        and cmap.size == groups
        and owned(graph, deps, cmap, node, *node.input[1:])
    ):
        # Depthwise: output channel i only reads input channel i, so both are cut as one.
        deps.steps.append(CutStep(index, "in", cmap))
        deps.maps[node.output[0]] = cmap
        return
    reason = (
        f"grouped Conv {label(node)} (group={groups}) mixes channels within fixed groups; "
        "removing some would unbalance them"
    )
    if cmap:
        deps.refuse(cmap.groups(), reason)
    out = deps.new_source(node.input[1], index, int(weight.shape[0]), weight.ndim, 1)
    deps.refuse(out.groups(), reason)
    deps.maps[node.output[0]] = out


def gemm(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    cmap = input_map(deps, node)
    weight = graph.constant(node.input[1])
    trans_a = int(attribute(node, "transA", 0))
    if cmap:
        if weight is None or trans_a or cmap.axis != 1 or cmap.rank != 2:
            deps.refuse(
                cmap.groups(),
                f"Gemm {label(node)} reads the channels in a layout "
                "Shears does not cut (transA or a non-constant B)",
            )
        elif owned(graph, deps, cmap, node, node.input[1]):
            deps.steps.append(CutStep(index, "in", cmap))
    if weight is None or graph.uses[node.input[1]] != 1 or trans_a:
        return
    out = int(weight.shape[0] if attribute(node, "transB", 0) else weight.shape[1])
    if len(node.input) > 2 and node.input[2] and not _bias_ok(graph, node.input[2]):
        return
    deps.maps[node.output[0]] = deps.new_source(node.input[1], index, out, 2, 1)


def matmul(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    cmap = input_map(deps, node)
    weight = graph.constant(node.input[1])
    if input_map(deps, node, 1) or (cmap and (weight is None or weight.ndim != 2)):
        deps.refuse(
            groups_of(deps, node),
            f"MatMul {label(node)} multiplies these channels with a non-constant matrix",
        )
        return
    if cmap and cmap.axis == cmap.rank - 1 and owned(graph, deps, cmap, node, node.input[1]):
        deps.steps.append(CutStep(index, "in", cmap))
    elif cmap:
        deps.refuse(
            cmap.groups(), f"MatMul {label(node)} contracts an axis other than the channels"
        )
        return
    if weight is None or weight.ndim != 2 or graph.uses[node.input[1]] != 1:
        return
    dims = graph.shape(node.input[0])
    rank = cmap.rank if cmap else (len(dims) if dims else 2)
    deps.maps[node.output[0]] = deps.new_source(
        node.input[1], index, int(weight.shape[1]), rank, rank - 1
    )


def batch_norm(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    cmap = input_map(deps, node)
    if not cmap:
        return
    if cmap.axis != 1 or not owned(graph, deps, cmap, node, *node.input[1:5]):
        deps.refuse(cmap.groups(), f"BatchNormalization {label(node)} cannot be cut")
        return
    deps.steps.append(CutStep(index, "in", cmap))
    deps.maps[node.output[0]] = cmap
    producer = deps.sources.get(cmap.segments[0].group)
    if len(cmap.segments) == 1 and producer and producer.node == _producer(graph, node):
        producer.norm = index


def _producer(graph: OnnxGraph, node: onnx.NodeProto) -> int | None:
    return next((i for i, n in enumerate(graph.nodes) if node.input[0] in n.output), None)


def unary(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    cmap = input_map(deps, node)
    if cmap and not any(n in deps.maps for n in node.input[1:]):
        if node.op_type == "PRelu":
            deps.refuse(cmap.groups(), f"PRelu {label(node)} has per-channel slopes")
            return
        deps.maps[node.output[0]] = cmap
    elif cmap or any(n in deps.maps for n in node.input[1:]):
        deps.refuse(
            groups_of(deps, node), f"{node.op_type} {label(node)} reads channels as a parameter"
        )


def pool(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    cmap = input_map(deps, node)
    if cmap and cmap.axis == 1:
        deps.maps[node.output[0]] = cmap
    elif cmap:
        deps.refuse(cmap.groups(), f"{node.op_type} {label(node)} pools over the channel axis")


def binary(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    maps = [deps.maps.get(name) for name in node.input]
    mapped = [m for m in maps if m is not None]
    if not mapped:
        return
    first = mapped[0]
    if len(mapped) == 2:
        if first.layout() != mapped[1].layout() or first.axis != mapped[1].axis:
            deps.refuse(
                groups_of(deps, node),
                f"{node.op_type} {label(node)} combines channels laid out differently",
            )
            return
        _tie(deps, node, first, mapped[1])
        deps.maps[node.output[0]] = first
        return
    other = node.input[1] if maps[0] is not None else node.input[0]
    if _broadcasts_per_channel(graph, other, first):
        if not owned(graph, deps, first, node, other):
            return
        deps.steps.append(CutStep(index, "in", first))
    elif not _broadcasts_over_channels(graph, other, first):
        deps.refuse(
            first.groups(),
            f"{node.op_type} {label(node)} combines the channels with "
            f"{other!r}, whose channels Shears cannot follow",
        )
        return
    deps.maps[node.output[0]] = first


def _tie(deps: Dependencies, node: onnx.NodeProto, a: ChannelMap, b: ChannelMap) -> None:
    """Residual addition: position i of both sides must survive or go together."""
    for sa, sb in zip(a.segments, b.segments, strict=True):
        if FIXED in (sa.group, sb.group) and sa.group != sb.group:
            deps.refuse(
                {sa.group, sb.group} - {FIXED},
                f"{node.op_type} {label(node)} adds "
                "these channels to channels that cannot be pruned",
            )
        elif sa.group != FIXED:
            deps.find.union(sa.group, sb.group)


def _broadcasts_per_channel(graph: OnnxGraph, name: str, cmap: ChannelMap) -> bool:
    value = graph.constant(name)
    from_right = cmap.rank - 1 - cmap.axis
    return value is not None and value.ndim > from_right and value.shape[-1 - from_right] > 1


def _broadcasts_over_channels(graph: OnnxGraph, name: str, cmap: ChannelMap) -> bool:
    dims = graph.shape(name)
    from_right = cmap.rank - 1 - cmap.axis
    if dims is None:
        return False
    return len(dims) <= from_right or dims[len(dims) - 1 - from_right] == 1


def _bias_ok(graph: OnnxGraph, name: str) -> bool:
    return graph.is_constant(name) and graph.uses[name] == 1


RULES: dict[str, Rule] = {
    "Conv": conv,
    "Gemm": gemm,
    "MatMul": matmul,
    "BatchNormalization": batch_norm,
    "Concat": concat,
    "Flatten": flatten,
    "Reshape": reshape,
    **{op: unary for op in UNARY},
    **{op: pool for op in POOLS},
    **{op: binary for op in BINARY},
}
