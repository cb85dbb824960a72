"""Rules for operators that move channels along an axis: Concat (channel offsets) and the
Flatten/Reshape between conv and fully connected layers (one channel -> H*W features)."""

from __future__ import annotations

import numpy as np
import onnx

from pruning.structured.channels import ChannelMap, Segment
from pruning.structured.dependency import (
    CutStep,
    Dependencies,
    fixed_map,
    groups_of,
    input_map,
    label,
    owned,
)
from pruning.structured.graph import OnnxGraph, attribute


def concat(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    maps = [deps.maps.get(name) for name in node.input]
    mapped = [m for m in maps if m is not None]
    if not mapped:
        return
    rank, channel_axis = mapped[0].rank, mapped[0].axis
    axis = int(attribute(node, "axis", 0)) % rank
    if axis != channel_axis or any(m.axis != channel_axis for m in mapped):
        deps.refuse(groups_of(deps, node), f"Concat {label(node)} joins along another axis")
        return
    segments: list[Segment] = []
    for name, cmap in zip(node.input, maps, strict=True):
        if cmap is None:
            dims = graph.shape(name)
            if not dims or dims[axis] is None:
                deps.refuse(
                    groups_of(deps, node), f"Concat {label(node)}: unknown width of {name!r}"
                )
                return
            cmap = fixed_map(int(dims[axis] or 0), rank, axis)
        segments.extend(cmap.segments)
    deps.maps[node.output[0]] = ChannelMap(axis, rank, tuple(segments))


def flatten(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    cmap = input_map(deps, node)
    if not cmap:
        return
    spatial = _spatial(graph, node.input[0], cmap)
    if int(attribute(node, "axis", 1)) != 1 or cmap.axis != 1 or spatial is None:
        deps.refuse(cmap.groups(), f"Flatten {label(node)} does not flatten from the channel axis")
        return
    deps.maps[node.output[0]] = _blocks(cmap, spatial)


def reshape(graph: OnnxGraph, deps: Dependencies, index: int, node: onnx.NodeProto) -> None:
    """Only the conv -> fully connected reshape ``(N, C, H, W) -> (N, C*H*W)``."""
    cmap = input_map(deps, node)
    if not cmap:
        return
    shape = graph.constant(node.input[1])
    spatial = _spatial(graph, node.input[0], cmap)
    width = cmap.size * (spatial or 0)
    ok = (
        shape is not None
        and shape.shape == (2,)
        and int(shape[1]) in (-1, width)
        and cmap.axis == 1
        and spatial is not None
        and owned(graph, deps, cmap, node, node.input[1])
    )
    if not ok:
        deps.refuse(
            cmap.groups(),
            f"Reshape {label(node)} is not a constant flatten of the "
            "channels (N, C, H, W) -> (N, C*H*W)",
        )
        return
    flat = _blocks(cmap, spatial or 1)
    deps.steps.append(CutStep(index, "in", flat))  # the shape counts features, not channels
    deps.maps[node.output[0]] = flat


def _blocks(cmap: ChannelMap, spatial: int) -> ChannelMap:
    segments = tuple(Segment(s.group, s.channels, s.block * spatial) for s in cmap.segments)
    return ChannelMap(1, 2, segments)


def _spatial(graph: OnnxGraph, name: str, cmap: ChannelMap) -> int | None:
    dims = graph.shape(name)
    if not dims or len(dims) != cmap.rank or any(d is None for d in dims[2:]):
        return None
    return int(np.prod([d or 0 for d in dims[2:]], dtype=np.int64))
