"""How to cut: per ONNX op type, ``prune_out_channels`` (a layer's own outputs) and
``prune_in_channels`` (the channels it reads), in the manner of Torch-Pruning's
``pruner/function.py``. ``keep`` holds the surviving positions along the channel axis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from pruning.structured.channels import ChannelMap, IntArray
from pruning.structured.graph import OnnxGraph, attribute, set_int_attribute

Cut = Callable[[OnnxGraph, onnx.NodeProto, IntArray, ChannelMap], None]


@dataclass(frozen=True)
class OpCutter:
    prune_out_channels: Cut | None = None
    prune_in_channels: Cut | None = None


def _take(graph: OnnxGraph, name: str, keep: IntArray, axis: int) -> None:
    value = graph.constant(name)
    assert value is not None, f"{name} is not a constant"  # the analysis checked
    graph.set_constant(name, np.take(value, keep, axis=axis))


def _optional(node: onnx.NodeProto, index: int) -> str | None:
    return node.input[index] if len(node.input) > index and node.input[index] else None


def conv_out(graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, _: ChannelMap) -> None:
    _take(graph, node.input[1], keep, 0)
    bias = _optional(node, 2)
    if bias:
        _take(graph, bias, keep, 0)


def conv_in(graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, cmap: ChannelMap) -> None:
    if int(attribute(node, "group", 1)) == 1:
        _take(graph, node.input[1], keep, 1)
        return
    conv_out(graph, node, keep, cmap)  # depthwise: channel i in is channel i out
    set_int_attribute(node, "group", int(keep.size))


def gemm_out(graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, _: ChannelMap) -> None:
    _take(graph, node.input[1], keep, 0 if attribute(node, "transB", 0) else 1)
    bias = _optional(node, 2)
    value = graph.constant(bias) if bias else None
    if bias and value is not None and value.ndim and value.shape[-1] > 1:
        _take(graph, bias, keep, value.ndim - 1)


def gemm_in(graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, _: ChannelMap) -> None:
    _take(graph, node.input[1], keep, 1 if attribute(node, "transB", 0) else 0)


def matmul_out(graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, _: ChannelMap) -> None:
    _take(graph, node.input[1], keep, 1)


def matmul_in(graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, _: ChannelMap) -> None:
    _take(graph, node.input[1], keep, 0)


def batch_norm_in(graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, _: ChannelMap) -> None:
    for name in node.input[1:5]:
        _take(graph, name, keep, 0)


def elementwise_in(
    graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, cmap: ChannelMap
) -> None:
    """The per-channel constant operand (e.g. a MatMul's bias added after it)."""
    name = next(n for n in node.input if graph.is_constant(n))
    value = graph.constant(name)
    assert value is not None
    _take(graph, name, keep, value.ndim - (cmap.rank - cmap.axis))


def reshape_in(graph: OnnxGraph, node: onnx.NodeProto, keep: IntArray, _: ChannelMap) -> None:
    shape = graph.constant(node.input[1])
    assert shape is not None
    if int(shape[1]) > 0:  # -1 adapts by itself
        shape = shape.copy()
        shape[1] = keep.size
        graph.set_constant(node.input[1], shape)


_ELEMENTWISE = OpCutter(prune_in_channels=elementwise_in)
CUTTERS: dict[str, OpCutter] = {
    "Conv": OpCutter(conv_out, conv_in),
    "Gemm": OpCutter(gemm_out, gemm_in),
    "MatMul": OpCutter(matmul_out, matmul_in),
    "BatchNormalization": OpCutter(prune_in_channels=batch_norm_in),
    "Reshape": OpCutter(prune_in_channels=reshape_in),
    **{op: _ELEMENTWISE for op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow")},
}
