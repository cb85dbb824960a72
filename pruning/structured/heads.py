"""Attention heads in ONNX graphs: find each multi-head attention block and cut whole heads.

A block is matched from its Softmax outwards, as ``torch.onnx.export`` writes it:
``MatMul(x, Wq) [+ bq] -> Reshape [b, s, H, D] -> Transpose -> MatMul(q, k^T) [-> Div/Mul/Add]
-> Softmax -> MatMul(p, v) -> Transpose -> Reshape [b, s, H*D] -> MatMul(., Wo)`` (scales may
sit on q or k before the scores MatMul). Removing head h removes its D columns of Wq, Wk, Wv
and their biases, its D rows of Wo, and rewrites the head count in the split and merge
Reshape shapes, whether constant or built by a Concat of constants and Shape/Gather values.
Anything else is refused with the node that stopped the match (Michel et al. 2019 prune heads
the same way in PyTorch; this does it on the exported graph).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from pruning.structured.channels import IntArray
from pruning.structured.dependency import label
from pruning.structured.fused_qkv import (
    NotPacked,
    PackedPart,
    chunk_shapes,
    packed_columns,
    packed_part,
    resize_split,
)
from pruning.structured.graph import OnnxGraph, attribute
from pruning.structured.head_transposes import SWAP_LAST, folded_transpose

_SCALES = ("Div", "Mul")
_SCALAR_OPS = ("Slice", "Gather", "Cast", "Sqrt", "Div", "Mul", "Reciprocal", "Pow", "Squeeze")
FUSED = ("Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention")


class NotAHead(Exception):
    """The match stopped at a node (named in the message)."""


@dataclass(frozen=True)
class Projection:
    node: int  # the MatMul whose (in, H*D) weight makes q, k or v
    weight: str
    bias: str | None
    packed: PackedPart | None = None  # q, k or v as one third of a packed QKV MatMul

    @property
    def width(self) -> int:
        return self.packed.width if self.packed else -1


@dataclass(frozen=True)
class ShapeEdit:
    """Where a Reshape's head count lives: a constant input of ``node`` (the Reshape itself or
    the Concat building its shape), element ``position`` of it."""

    node: int
    input: int
    position: int
    per_head: int  # the value is heads * per_head (1 for the split, D for the merge)


@dataclass
class AttentionBlock:
    softmax: str
    heads: int
    head_dim: int
    projections: tuple[Projection, Projection, Projection]  # q, k, v
    output_node: int  # the MatMul reading the merged heads
    output_weight: str
    merged: str  # the tensor the output MatMul reads: [b, s, H*D]
    edits: list[ShapeEdit] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.output_weight


@dataclass
class HeadAnalysis:
    blocks: list[AttentionBlock]
    refused: dict[str, str]  # Softmax node -> why its heads stay


def find_heads(graph: OnnxGraph) -> HeadAnalysis:
    index = _Index(graph)
    blocks, refused = [], {}
    for position, node in enumerate(graph.nodes):
        if node.op_type in FUSED:
            refused[node.name or node.output[0]] = (
                f"fused {node.op_type} {label(node)} packs its heads in one op (num_heads "
                f"attribute, packed weights); Shears cuts heads of unfused exports "
                "(torch.onnx.export without an optimizer's attention fusion)"
            )
        if node.op_type != "Softmax":
            continue
        try:
            blocks.append(_match(graph, index, position))
        except NotAHead as why:
            if _scores_of_two_activations(graph, index, node):
                refused[node.name or node.output[0]] = str(why)
    return HeadAnalysis(blocks, refused)


def _scores_of_two_activations(graph: OnnxGraph, index: _Index, softmax: onnx.NodeProto) -> bool:
    """Attention-like: the Softmax reads (through scales and masks) a MatMul of two computed
    tensors. A classifier's Softmax is not, and is not reported."""
    name = softmax.input[0]
    for _ in range(4):
        producer = index.producer.get(name)
        if producer is None:
            return False
        node = graph.nodes[producer]
        if node.op_type == "MatMul":
            return not any(graph.is_constant(n) for n in node.input)
        if node.op_type not in (*_SCALES, "Add", "Where", "Cast"):
            return False
        name = node.input[0] if not graph.is_constant(node.input[0]) else node.input[-1]
    return False


def block_weights(block: AttentionBlock) -> set[str]:
    return {p.weight for p in block.projections} | {block.output_weight}


def cut_heads(graph: OnnxGraph, block: AttentionBlock, keep: IntArray) -> None:
    """Keep heads ``keep`` (sorted indices) of ``block``."""
    d = block.head_dim
    columns = (keep[:, None] * d + np.arange(d)).reshape(-1)
    packed = [p.packed for p in block.projections if p.packed is not None]
    projections = block.projections[:1] if packed else block.projections
    wanted = packed_columns(packed, columns) if packed else columns
    for projection in projections:
        _take(graph, projection.weight, wanted, 1)
        if projection.bias:
            bias = graph.constant(projection.bias)
            assert bias is not None
            _take(graph, projection.bias, wanted, bias.ndim - 1)
    if packed:
        resize_split(graph, packed, int(columns.size))
    _take(graph, block.output_weight, columns, 0)
    for edit in block.edits:
        node = graph.nodes[edit.node]
        value = graph.constant(node.input[edit.input])
        assert value is not None
        value = value.copy()
        value.reshape(-1)[edit.position] = int(keep.size) * edit.per_head
        name = f"{node.input[edit.input]}.shears_heads{edit.node}"
        graph.proto.graph.initializer.append(numpy_helper.from_array(value, name))
        node.input[edit.input] = name


def _take(graph: OnnxGraph, name: str, keep: IntArray, axis: int) -> None:
    value = graph.constant(name)
    assert value is not None
    graph.set_constant(name, np.take(value, keep, axis=axis))


class _Index:
    def __init__(self, graph: OnnxGraph) -> None:
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(graph.nodes):
            for name in node.output:
                self.producer[name] = i
            for name in node.input:
                if name:
                    self.consumers[name].append(i)


def _match(graph: OnnxGraph, index: _Index, softmax: int) -> AttentionBlock:
    nodes = graph.nodes
    node = nodes[softmax]
    if int(attribute(node, "axis", -1)) not in (-1, 3):
        raise NotAHead(f"Softmax {label(node)} is not over the last axis")
    scores = _through_scales(graph, index, node.input[0], softmax, 1, allow_add=True)
    scores_mm = nodes[scores]
    if scores_mm.op_type != "MatMul":
        raise NotAHead(f"{scores_mm.op_type} {label(scores_mm)} does not compute attention scores")
    context = [i for i in index.consumers[node.output[0]]]
    if len(context) != 1 or nodes[context[0]].op_type != "MatMul":
        raise NotAHead(f"Softmax {label(node)} is not read by one context MatMul")
    context_mm = nodes[context[0]]
    if context_mm.input[0] != node.output[0]:
        raise NotAHead(f"MatMul {label(context_mm)} reads the probabilities as its right side")
    q, q_edit, (heads, head_dim) = _head_side(graph, index, scores, 0, (1, 3))
    k, k_edit, k_shape = _head_side(graph, index, scores, 1, (1, 2))
    v, v_edit, v_shape = _head_side(graph, index, context[0], 1, (1, 3))
    if k_shape != (heads, head_dim) or v_shape != (heads, head_dim):
        raise NotAHead(f"MatMul {label(scores_mm)}: q, k and v split into different heads")
    parts = [p.packed for p in (q, k, v)]
    splits = {p.source for p in parts if p is not None}
    if any(p is not None for p in parts) and (
        None in parts or len(splits) != 1 or sorted(p.part for p in parts if p) != [0, 1, 2]
    ):
        raise NotAHead(
            f"MatMul {label(scores_mm)}: q, k and v are not the three parts of one Split"
        )
    output_node, output_weight, merged, merge_edit = _merge(
        graph, index, context_mm, heads, head_dim
    )
    edits = _check_shape_edits(
        graph, index, [e for e in (q_edit, k_edit, v_edit, merge_edit) if e is not None]
    )
    return AttentionBlock(
        node.name or node.output[0],
        heads,
        head_dim,
        (q, k, v),
        output_node,
        output_weight,
        merged,
        edits,
    )


def _through_scales(
    graph: OnnxGraph,
    index: _Index,
    name: str,
    reader: int,
    heads_axis: int,
    allow_add: bool,
    skip: frozenset[int] = frozenset(),
) -> int:
    """Walk back from ``reader`` over scalar scales (for scores, also a broadcast mask Add);
    ``heads_axis``: where the heads are in these tensors; ``skip``: readers of ``name`` known
    to follow a head cut (the Shape of a folded transpose)."""
    while True:
        producer = _producer(graph, index, name)
        _single_use(graph, index, name, reader, heads_axis, skip)
        skip = frozenset()
        node = graph.nodes[producer]
        allowed = _SCALES + (("Add",) if allow_add else ())
        if node.op_type not in allowed:
            return producer
        reader = producer
        other = node.input[1] if node.input[0] in index.producer else node.input[0]
        main = node.input[0] if other == node.input[1] else node.input[1]
        if node.op_type in _SCALES:
            value = graph.constant(other)
            scalar = value.size == 1 if value is not None else _from_head_dim(graph, index, other)
            if not scalar or (node.op_type == "Div" and other != node.input[1]):
                raise NotAHead(f"{node.op_type} {label(node)} is not a scalar scale")
        else:
            dims = graph.shape(other)
            if dims is None or (len(dims) >= 3 and dims[-3] != 1):
                raise NotAHead(f"Add {label(node)} adds a mask that may differ per head")
        name = main


def _producer(graph: OnnxGraph, index: _Index, name: str) -> int:
    if name not in index.producer:
        raise NotAHead(f"tensor {name!r} is a graph input or constant, not a head projection")
    return index.producer[name]


def _single_use(
    graph: OnnxGraph,
    index: _Index,
    name: str,
    reader: int,
    heads_axis: int,
    skip: frozenset[int] = frozenset(),
) -> None:
    others = [graph.nodes[i] for i in index.consumers[name] if i != reader and i not in skip]
    for other in others:
        if not _reads_other_axes(graph, index, other, heads_axis):
            raise NotAHead(
                f"{other.op_type} {label(other)} also reads {name!r}, whose heads would change"
            )


def _reads_other_axes(
    graph: OnnxGraph, index: _Index, node: onnx.NodeProto, heads_axis: int
) -> bool:
    """A Shape whose readers Gather or Slice only dimensions other than ``heads_axis`` (batch,
    sequence, head_dim) sees the same values after the cut."""
    if node.op_type != "Shape":
        return False
    dims = graph.shape(node.input[0])
    if dims is None:
        return False
    rank = len(dims)
    axes = [_axes_read(graph, graph.nodes[r], rank) for r in index.consumers[node.output[0]]]
    return all(a is not None and heads_axis % rank not in a for a in axes)


def _axes_read(graph: OnnxGraph, node: onnx.NodeProto, rank: int | None) -> set[int] | None:
    """Which dimensions a Gather or Slice of a shape vector reads (None: unknown)."""
    if node.op_type == "Gather":
        which = graph.constant(node.input[1])
        if which is None:
            return None
        picked = [int(i) for i in np.asarray(which).reshape(-1)]
    elif node.op_type == "Slice" and len(node.input) in (3, 4) and rank is not None:
        start, end = graph.constant(node.input[1]), graph.constant(node.input[2])
        if start is None or end is None or start.size != 1 or end.size != 1:
            return None
        first, last = int(start.reshape(-1)[0]), int(end.reshape(-1)[0])
        first, last = first + rank if first < 0 else first, last + rank if last < 0 else last
        picked = list(range(max(first, 0), min(last, rank)))
    else:
        return None
    if rank is None:
        return None if any(i < 0 for i in picked) else set(picked)
    return {i % rank for i in picked}


def _from_head_dim(graph: OnnxGraph, index: _Index, name: str) -> bool:
    """A scale computed from the last dimension of 4-D tensors (head_dim, which the cut keeps),
    e.g. ``1 / sqrt(q.shape[-1])`` as the exporter writes scaled_dot_product_attention."""
    pending, seen = [name], 0
    while pending:
        current = pending.pop()
        seen += 1
        if graph.is_constant(current):
            continue
        if current not in index.producer or seen > 24:
            return False
        node = graph.nodes[index.producer[current]]
        if node.op_type == "Shape":
            dims = graph.shape(node.input[0])
            readers = [graph.nodes[r] for r in index.consumers[node.output[0]]]
            last = [_axes_read(graph, r, len(dims) if dims else None) for r in readers]
            if dims is None or len(dims) != 4 or any(a != {3} for a in last):
                return False
            continue
        if node.op_type not in _SCALAR_OPS:
            return False
        pending.extend(n for n in node.input if n)
    return True


def _head_side(
    graph: OnnxGraph, index: _Index, reader: int, operand: int, axes: tuple[int, int]
) -> tuple[Projection, ShapeEdit | None, tuple[int, int]]:
    """Follow q, k or v (input ``operand`` of node ``reader``) back to its projection;
    ``axes``: where H and D must land (k^T has D before the sequence)."""
    perm = [0, 1, 2, 3]  # position in this tensor -> axis of the split [b, s, H, D]
    name = graph.nodes[reader].input[operand]
    heads_axis = axes[0]  # where the heads must be at the scores/context MatMul
    current = _through_scales(graph, index, name, reader, heads_axis, allow_add=False)
    while True:
        node = graph.nodes[current]
        folded = None
        if node.op_type == "Reshape":
            folded = folded_transpose(graph, index.producer, index.consumers, current)
        if folded is not None:
            perm = [SWAP_LAST[p] for p in perm]
            heads_axis = SWAP_LAST[heads_axis]
            skip = frozenset({folded.shape})
            current = _through_scales(
                graph, index, folded.source, folded.fold, heads_axis, False, skip
            )
            continue
        if node.op_type != "Transpose":
            break
        step = list(attribute(node, "perm", []))
        if len(step) != 4:
            raise NotAHead(f"Transpose {label(node)} is not over 4 axes")
        perm = [step[p] for p in perm]  # walking back: the earlier transpose applies first
        heads_axis = step[heads_axis]
        current = _through_scales(graph, index, node.input[0], current, heads_axis, False)
    split = graph.nodes[current]
    if split.op_type != "Reshape":
        raise NotAHead(f"{split.op_type} {label(split)} does not split heads")
    if perm[axes[0]] != 2 or perm[axes[1]] != 3:
        raise NotAHead(f"Reshape {label(split)}: heads are not moved next to the batch axis")
    if _shape_length(graph, split) != 4:
        raise NotAHead(f"Reshape {label(split)} does not give [batch, seq, heads, head_dim]")
    heads, found = _shape_element(graph, index, split, 2)
    edit = None if heads == -1 else found
    head_dim, _ = _shape_element(graph, index, split, 3)
    _single_use(graph, index, split.input[0], current, -1)
    projection = _projection(graph, index, split.input[0])
    weight_width = int(np.prod(graph.constant(projection.weight).shape[1:]))  # type: ignore[union-attr]
    width = projection.width if projection.packed else weight_width
    heads = width // head_dim if heads == -1 and head_dim > 0 else heads
    head_dim = width // heads if head_dim == -1 and heads > 0 else head_dim
    if heads <= 0 or head_dim <= 0 or heads * head_dim != width:
        raise NotAHead(f"Reshape {label(split)} does not split {width} features into heads")
    return projection, edit, (heads, head_dim)


def _projection(graph: OnnxGraph, index: _Index, name: str) -> Projection:
    try:
        packed = packed_part(graph, index.producer, name)
    except NotPacked as why:
        raise NotAHead(str(why)) from why
    if packed is not None:
        split = graph.nodes[packed.split]
        readers = chunk_shapes(graph, index.consumers, packed.source)
        _single_use(graph, index, packed.source, packed.split, -1, readers)
        fused = _projection(graph, index, packed.source)
        weight = graph.constant(fused.weight)
        if weight is None or weight.shape[-1] != 3 * packed.width:
            raise NotAHead(f"Split {label(split)} does not split the packed q, k, v projection")
        return Projection(fused.node, fused.weight, fused.bias, packed)
    node = graph.nodes[_producer(graph, index, name)]
    bias = None
    if node.op_type == "Add":
        bias = next((n for n in node.input if graph.is_constant(n)), None)
        value = graph.constant(bias) if bias else None
        if bias is None or value is None or value.ndim != 1:
            raise NotAHead(f"Add {label(node)} is not a per-feature bias")
        main = node.input[0] if node.input[1] == bias else node.input[1]
        _single_use(graph, index, main, graph.nodes.index(node), -1)
        node = graph.nodes[_producer(graph, index, main)]
    weight = graph.constant(node.input[1]) if node.op_type == "MatMul" else None
    bias_value = graph.constant(bias) if bias else None
    width = weight.shape[1] if weight is not None and weight.ndim == 2 else -1
    if weight is None or (bias_value is not None and bias_value.shape != (width,)):
        raise NotAHead(f"{node.op_type} {label(node)} is not a projection with a constant weight")
    shared = [n for n in (node.input[1], bias) if n and graph.uses[n] != 1]
    if shared:
        raise NotAHead(f"MatMul {label(node)}: weight {shared[0]!r} is shared")
    return Projection(graph.nodes.index(node), node.input[1], bias)


def _merge(
    graph: OnnxGraph, index: _Index, context: onnx.NodeProto, heads: int, head_dim: int
) -> tuple[int, str, str, ShapeEdit | None]:
    perm = [0, 1, 2, 3]  # position -> axis of [b, H, s, D]
    name = context.output[0]
    node = _only_reader(graph, index, name, 1)
    while node.op_type == "Transpose":
        step = list(attribute(node, "perm", []))
        perm = [perm[p] for p in step] if len(step) == 4 else []
        name = node.output[0]
        node = _only_reader(graph, index, name, perm.index(1) if 1 in perm else 1)
    if node.op_type != "Reshape" or perm != [0, 2, 1, 3]:
        raise NotAHead(f"{node.op_type} {label(node)} does not merge the heads back")
    merged = _shape_element(graph, index, node, 2) if _shape_length(graph, node) == 3 else None
    if merged is None or merged[0] not in (-1, heads * head_dim):
        raise NotAHead(f"Reshape {label(node)} does not merge to [batch, seq, heads*head_dim]")
    found = merged[1]
    edit = None if merged[0] == -1 else ShapeEdit(found.node, found.input, found.position, head_dim)
    out = _only_reader(graph, index, node.output[0], -1)
    weight = graph.constant(out.input[1]) if out.op_type == "MatMul" else None
    if weight is None or out.input[0] != node.output[0] or weight.ndim != 2:
        raise NotAHead(f"{out.op_type} {label(out)} is not an output projection")
    if graph.uses[out.input[1]] != 1:
        raise NotAHead(f"MatMul {label(out)}: weight {out.input[1]!r} is shared")
    return graph.nodes.index(out), out.input[1], node.output[0], edit


def _only_reader(graph: OnnxGraph, index: _Index, name: str, heads_axis: int) -> onnx.NodeProto:
    readers = [graph.nodes[i] for i in index.consumers[name]]
    main = [r for r in readers if not _reads_other_axes(graph, index, r, heads_axis)]
    if len(main) != 1 or name in graph.outputs:
        where = f"{main[1].op_type} {label(main[1])}" if len(main) > 1 else "nothing we cut"
        where = "the graph output" if name in graph.outputs else where
        raise NotAHead(
            f"tensor {name!r} between the heads and the output projection is read by {where}"
        )
    reader: onnx.NodeProto = main[0]
    return reader


def _shape_length(graph: OnnxGraph, reshape: onnx.NodeProto) -> int | None:
    shape = graph.constant(reshape.input[1])
    if shape is not None:
        return int(shape.size)
    dims = graph.shape(reshape.input[1])
    return int(dims[0]) if dims and len(dims) == 1 and dims[0] is not None else None


def _shape_element(
    graph: OnnxGraph, index: _Index, reshape: onnx.NodeProto, position: int
) -> tuple[int, ShapeEdit]:
    """The constant at element ``position`` of a Reshape's shape, and where it lives (in the
    shape itself, or in the constant input of the Concat that builds it)."""
    shape = graph.constant(reshape.input[1])
    if shape is not None:
        at = graph.nodes.index(reshape)
        return int(shape.reshape(-1)[position]), ShapeEdit(at, 1, position, 1)
    concat = graph.nodes[_producer(graph, index, reshape.input[1])]
    if concat.op_type != "Concat":
        raise NotAHead(
            f"{concat.op_type} {label(concat)} computes the shape of Reshape {label(reshape)}; "
            "Shears rewrites constant shapes and Concats of constants"
        )
    offset = 0
    for i, part in enumerate(concat.input):
        value = graph.constant(part)
        dims = [value.size] if value is not None else graph.shape(part)
        if not dims or len(dims) != 1 or dims[0] is None:
            raise NotAHead(f"Concat {label(concat)}: unknown length of {part!r}")
        if offset <= position < offset + int(dims[0]):
            if value is None:
                raise NotAHead(
                    f"Concat {label(concat)} takes element {position} of the shape of Reshape "
                    f"{label(reshape)} from {part!r}, which is not a constant"
                )
            at = graph.nodes.index(concat)
            return int(value.reshape(-1)[position - offset]), ShapeEdit(at, i, position - offset, 1)
        offset += int(dims[0])
    raise NotAHead(f"Concat {label(concat)} is shorter than the shape of {label(reshape)}")


def _check_shape_edits(graph: OnnxGraph, index: _Index, edits: list[ShapeEdit]) -> list[ShapeEdit]:
    """One edit per shape element; a rewritten Concat must feed this block's Reshapes only."""
    unique = {(e.node, e.input, e.position): e for e in edits}
    reshapes = {i for i, n in enumerate(graph.nodes) if n.op_type == "Reshape"}
    for edit in unique.values():
        node = graph.nodes[edit.node]
        if node.op_type != "Concat":
            continue
        readers = set(index.consumers[node.output[0]])
        if not readers <= reshapes or len(readers) > 3:
            raise NotAHead(f"Concat {label(node)} builds a shape read outside this attention")
    return list(unique.values())
