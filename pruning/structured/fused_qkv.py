"""Q, K and V from one packed projection, as optimum-style exports and fused-QKV models write
them: ``MatMul(x, W[in, 3E]) [+ b[3E]] -> Split(axis=-1, [E, E, E]) -> q, k, v`` (the dynamo
exporter's ``chunk``), or three ``Slice``s of the last axis (the TorchScript-based exporter's
``chunk``, bounds computed from ``Shape`` at run time; or constant bounds).

Removing head h removes its D columns in each third of W and b; the Split's sizes become
three times kept x D; constant Slice bounds are rewritten, computed ones are checked to follow
the width (evaluated at the old and at a smaller width). Anything else is refused by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from pruning.structured.channels import IntArray
from pruning.structured.dependency import label
from pruning.structured.graph import OnnxGraph, attribute

PARTS = 3


class NotPacked(Exception):
    """The Split is not an equal three-way split of the last axis (named in the message)."""


@dataclass(frozen=True)
class PackedPart:
    split: int  # the Split node, or the Slice of this part
    part: int  # which output: 0 q, 1 k, 2 v
    width: int  # E, the width of each part
    source: str = ""  # the packed tensor


def packed_part(graph: OnnxGraph, producer: Mapping[str, int], name: str) -> PackedPart | None:
    """Where ``name`` comes from when it is an output of a Split; raises NotPacked when that
    Split cannot be cut, None when ``name`` is not a Split's output."""
    at = producer.get(name)
    if at is not None and graph.nodes[at].op_type == "Slice":
        return _sliced_part(graph, producer, at)
    if at is None or graph.nodes[at].op_type != "Split":
        return None
    node = graph.nodes[at]
    total = _total_width(graph, node)
    axis = int(attribute(node, "axis", 0))
    rank = _rank(graph, node.input[0])
    if total is None or rank is None or axis not in (-1, rank - 1):
        raise NotPacked(f"Split {label(node)} does not split the last axis of a known width")
    if len(node.output) != PARTS:
        raise NotPacked(f"Split {label(node)} does not split into q, k and v")
    sizes = graph.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    if sizes is not None:
        parts = [int(s) for s in np.asarray(sizes).reshape(-1)]
    elif len(node.input) == 1 and int(attribute(node, "num_outputs", PARTS)) == PARTS:
        parts = [total // PARTS] * PARTS if total % PARTS == 0 else []
    else:
        parts = []
    if len(parts) != PARTS or len(set(parts)) != 1 or sum(parts) != total:
        raise NotPacked(f"Split {label(node)} does not split into three equal parts")
    return PackedPart(at, list(node.output).index(name), parts[0], node.input[0])


def _sliced_part(graph: OnnxGraph, producer: Mapping[str, int], at: int) -> PackedPart:
    node = graph.nodes[at]
    total, rank = _total_width(graph, node), _rank(graph, node.input[0])
    axes = graph.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = graph.constant(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    last = axes is not None and axes.size == 1 and rank is not None
    last = last and int(np.asarray(axes).reshape(-1)[0]) in (-1, (rank or 0) - 1)
    if total is None or total % PARTS or not last or (steps is not None and steps.size != 1):
        raise NotPacked(f"Slice {label(node)} does not slice the last axis of a known width")
    if steps is not None and int(np.asarray(steps).reshape(-1)[0]) != 1:
        raise NotPacked(f"Slice {label(node)} has a step")
    width = total // PARTS
    bounds = [_bounds(graph, producer, node, total, n) for n in node.input[1:3]]
    if None in bounds:
        raise NotPacked(f"Slice {label(node)}: its bounds are neither constant nor the width's")
    start, end = (b[0] for b in bounds if b is not None)
    if start % width or end - start != width:
        raise NotPacked(f"Slice {label(node)} does not take one third of the packed width")
    return PackedPart(at, start // width, width, node.input[0])


def _bounds(
    graph: OnnxGraph, producer: Mapping[str, int], node: onnx.NodeProto, total: int, name: str
) -> tuple[int, bool] | None:
    """A Slice bound at the packed width, and whether it is constant; a computed bound must
    scale with the width (checked at other widths: one and width - 1 per part)."""
    value = _evaluate(graph, producer, name, node.input[0], total, 0)
    if value is None or value.size != 1:
        return None
    constant = graph.constant(name) is not None
    width = total // PARTS
    at = min(int(value.reshape(-1)[0]), total)
    for part_width in () if constant or at % width else (1, width - 1):
        other = _evaluate(graph, producer, name, node.input[0], PARTS * part_width, 0)
        wanted = at // width * part_width
        if other is None or other.size != 1 or min(int(other[0]), PARTS * part_width) != wanted:
            return None
    return at, constant


_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.floor_divide}


def _evaluate(
    graph: OnnxGraph,
    producer: Mapping[str, int],
    name: str,
    packed: str,
    width: int,
    depth: int,
) -> np.ndarray | None:
    """The value of a small shape computation over ``Shape(packed)``, its last dim ``width``."""
    value = graph.constant(name)
    if value is not None or depth > 12:
        return value
    at = producer.get(name)
    if at is None:
        return None
    node = graph.nodes[at]
    if node.op_type == "Shape":
        dims = graph.shape(packed)
        if (
            node.input[0] != packed
            or not dims
            or attribute(node, "start", 0)
            or len(node.attribute) > 1
        ):
            return None
        return np.array([-1] * (len(dims) - 1) + [width], np.int64)  # only the last is read
    inputs = [_evaluate(graph, producer, n, packed, width, depth + 1) for n in node.input if n]
    if any(v is None for v in inputs):
        return None
    values = [np.asarray(v) for v in inputs if v is not None]
    if node.op_type in _ARITHMETIC and len(values) == 2:
        return np.asarray(_ARITHMETIC[node.op_type](values[0], values[1]))
    if node.op_type == "Gather" and len(values) == 2:
        picked = np.take(values[0], values[1], axis=0)
        return None if np.any(picked < 0) else np.asarray(picked)
    if node.op_type in ("Unsqueeze", "Squeeze", "Cast", "Identity") and values:
        return values[0].reshape(-1) if values[0].size == 1 else None
    return None


def _total_width(graph: OnnxGraph, node: onnx.NodeProto) -> int | None:
    dims = graph.shape(node.input[0])
    last = dims[-1] if dims else None
    return int(last) if isinstance(last, int) else None


def _rank(graph: OnnxGraph, name: str) -> int | None:
    dims = graph.shape(name)
    return len(dims) if dims is not None else None


def packed_columns(parts: list[PackedPart], columns: IntArray) -> IntArray:
    """The columns of the packed weight that keep ``columns`` of each part, in part order."""
    ordered = sorted(parts, key=lambda p: p.part)
    return np.concatenate([p.part * p.width + columns for p in ordered])


def resize_split(graph: OnnxGraph, parts: list[PackedPart], width: int) -> None:
    """Give the Split three parts of ``width``, or rewrite constant Slice bounds."""
    node = graph.nodes[parts[0].split]
    if node.op_type == "Slice":
        for part in parts:
            _rebound(graph, part, width)
        return
    split = parts[0].split
    if len(node.input) < 2 or not node.input[1]:
        return  # num_outputs: equal parts of whatever comes in
    name = f"{node.input[1]}.shears_heads{split}"
    sizes = np.full(PARTS, width, np.int64)
    graph.proto.graph.initializer.append(numpy_helper.from_array(sizes, name))
    node.input[1] = name


def _rebound(graph: OnnxGraph, part: PackedPart, width: int) -> None:
    node = graph.nodes[part.split]
    for position, value in ((1, part.part * width), (2, (part.part + 1) * width)):
        if graph.constant(node.input[position]) is None:
            continue  # computed from the packed width at run time
        name = f"{node.input[position]}.shears_heads{part.split}"
        graph.proto.graph.initializer.append(
            numpy_helper.from_array(np.array([value], np.int64), name)
        )
        node.input[position] = name


def chunk_shapes(
    graph: OnnxGraph, consumers: Mapping[str, Sequence[int]], source: str
) -> frozenset[int]:
    """The Slices of ``source`` and the Shape nodes of ``source`` whose values reach only the
    bounds of those Slices (checked to follow the width), so they may read the cut tensor."""
    slices = {i for i in consumers.get(source, []) if graph.nodes[i].op_type == "Slice"}
    allowed = set(slices)
    for at in consumers.get(source, []):
        if graph.nodes[at].op_type != "Shape":
            continue
        pending, seen, ok = [at], 0, True
        while pending and ok:
            current = graph.nodes[pending.pop()]
            seen += 1
            for name in current.output:
                for reader in consumers.get(name, []):
                    node = graph.nodes[reader]
                    if reader in slices and node.input[0] != name:
                        continue
                    ok = (
                        ok
                        and seen < 32
                        and node.op_type in _SHAPE_MATH
                        and name not in graph.outputs
                    )
                    pending.append(reader)
        if ok:
            allowed.add(at)
    return frozenset(allowed)


_SHAPE_MATH = (*_ARITHMETIC, "Gather", "Unsqueeze", "Squeeze", "Cast", "Identity")
