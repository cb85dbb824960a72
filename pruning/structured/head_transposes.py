"""k^T as the dynamo exporter writes it for ``scaled_dot_product_attention``: a 4-D
``[b, H, s, D]`` key folded to ``[-1, s, D]``, transposed, unfolded to ``[b, H, D, s]``, with
both shapes cut from ``Shape(k)`` at run time::

    S = Shape(k)
    Reshape(k, Concat(-1, S[-2:-1], S[-1:])) -> Transpose(0, 2, 1)
    -> Reshape(., Concat(S[:-2], S[-1:], S[-2:-1]))

The three nodes swap the last two axes and take the head count from ``k`` itself, so a head cut
upstream passes through unchanged: the head matcher walks it as ``Transpose(0, 1, 3, 2)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from pruning.structured.graph import OnnxGraph, attribute

_RANK = 4
_FOLD = [("const", -1), ("axis", 2), ("axis", 3)]
_UNFOLD = [("axis", 0), ("axis", 1), ("axis", 3), ("axis", 2)]
SWAP_LAST = [0, 1, 3, 2]


@dataclass(frozen=True)
class FoldedTranspose:
    source: str  # the 4-D key the fold reads
    fold: int  # the first Reshape (reads ``source``)
    shape: int  # the Shape node of ``source``, which the walk may ignore


def folded_transpose(
    graph: OnnxGraph,
    producer: Mapping[str, int],
    consumers: Mapping[str, Sequence[int]],
    unfold: int,
) -> FoldedTranspose | None:
    """The fold/transpose/unfold ending at Reshape ``unfold``, or None when it is not one."""
    nodes = graph.nodes

    def made_by(name: str, op: str) -> int | None:
        at = producer.get(name)
        return at if at is not None and nodes[at].op_type == op else None

    def only_read_by(name: str, reader: int) -> bool:
        return list(consumers.get(name, [])) == [reader] and name not in graph.outputs

    last = nodes[unfold]
    swap = made_by(last.input[0], "Transpose")
    if last.op_type != "Reshape" or swap is None:
        return None
    if list(attribute(nodes[swap], "perm", [])) != [0, 2, 1]:
        return None
    fold = made_by(nodes[swap].input[0], "Reshape")
    if fold is None or not only_read_by(nodes[swap].output[0], unfold):
        return None
    if not only_read_by(nodes[fold].output[0], swap):
        return None
    source = nodes[fold].input[0]
    dims = graph.shape(source)
    if dims is not None and len(dims) != _RANK:
        return None
    shape = _shape_of(graph, producer, consumers, source)
    if shape is None:
        return None
    fold_parts = _parts(graph, producer, nodes[fold].input[1], shape)
    unfold_parts = _parts(graph, producer, last.input[1], shape)
    if fold_parts != _FOLD or unfold_parts != _UNFOLD:
        return None
    return FoldedTranspose(source, fold, shape)


def _shape_of(
    graph: OnnxGraph,
    producer: Mapping[str, int],
    consumers: Mapping[str, Sequence[int]],
    source: str,
) -> int | None:
    shapes = [
        i
        for i in consumers.get(source, [])
        if graph.nodes[i].op_type == "Shape"
        and int(attribute(graph.nodes[i], "start", 0)) == 0
        and attribute(graph.nodes[i], "end", None) is None
    ]
    return shapes[0] if len(shapes) == 1 else None


def _parts(
    graph: OnnxGraph, producer: Mapping[str, int], name: str, shape: int
) -> list[tuple[str, int]] | None:
    """A Concat's elements: ("const", value) or ("axis", i) for a Slice of ``Shape(source)``."""
    at = producer.get(name)
    if at is None or graph.nodes[at].op_type != "Concat":
        return None
    parts: list[tuple[str, int]] = []
    for part in graph.nodes[at].input:
        value = graph.constant(part)
        if value is not None:
            parts.extend(("const", int(v)) for v in np.asarray(value).reshape(-1))
            continue
        axes = _sliced_axes(graph, producer, part, shape)
        if axes is None:
            return None
        parts.extend(("axis", a) for a in axes)
    return parts


def _sliced_axes(
    graph: OnnxGraph, producer: Mapping[str, int], name: str, shape: int
) -> list[int] | None:
    at = producer.get(name)
    node: onnx.NodeProto | None = graph.nodes[at] if at is not None else None
    if node is None or node.op_type != "Slice" or len(node.input) not in (3, 4):
        return None
    if producer.get(node.input[0]) != shape:
        return None
    if len(node.input) == 4 and node.input[3]:
        axes = graph.constant(node.input[3])
        if axes is None or [int(a) for a in np.asarray(axes).reshape(-1)] != [0]:
            return None
    start, end = graph.constant(node.input[1]), graph.constant(node.input[2])
    if start is None or end is None or start.size != 1 or end.size != 1:
        return None
    first, stop = int(start.reshape(-1)[0]), int(end.reshape(-1)[0])
    return list(range(_RANK))[slice(first, stop)]
