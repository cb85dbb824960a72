"""Value ranges of an ONNX graph's integer and bool inputs, from the nodes that read them:
``Gather(table, ids)`` on an initializer bounds ids by the table's rows; a comparison,
``Where``, ``Mul`` or ``Sub`` marks a mask (ONNX operator specs; exporters reach them through
``Cast``, ``Unsqueeze`` and ``Reshape``)."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator

import onnx

from pruning.input_ranges import FREE, IndexUse, InputRange, decide

# Ops whose first input flows to their first output unchanged in value (shape or type only).
PASS_THROUGH = {"Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Identity", "Expand"}
MASK_OPS = {
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "Where",
    "Mul",
    "Sub",
}
INTEGER_TYPES = {
    onnx.TensorProto.INT8,
    onnx.TensorProto.INT16,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.UINT16,
    onnx.TensorProto.UINT32,
    onnx.TensorProto.UINT64,
    onnx.TensorProto.BOOL,
}


def onnx_input_ranges(graph: onnx.GraphProto) -> dict[str, InputRange]:
    """A range for every integer or bool graph input that is not an initializer."""
    tables = _table_rows(graph)
    readers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in graph.node:
        for index, name in enumerate(node.input):
            readers[name].append((node, index))
    initializers = {i.name for i in graph.initializer}
    ranges = {}
    for value in graph.input:
        if value.name in initializers:
            continue
        if value.type.tensor_type.elem_type in INTEGER_TYPES:
            ranges[value.name] = _range_of(value.name, readers, tables)
    return ranges


def _range_of(
    name: str,
    readers: dict[str, list[tuple[onnx.NodeProto, int]]],
    tables: dict[str, int | None],
) -> InputRange:
    indexed: list[IndexUse] = []
    masked = False
    for node, index in _uses(name, readers):
        if node.op_type == "Gather" and index == 1:
            axis = _axis(node)
            rows = tables.get(node.input[0])
            sized = rows if axis == 0 else None
            indexed.append(IndexUse(node.input[0], sized))
        elif node.op_type in MASK_OPS:
            masked = True
    return decide(indexed, masked) if indexed or masked else FREE


def _uses(
    name: str, readers: dict[str, list[tuple[onnx.NodeProto, int]]]
) -> Iterator[tuple[onnx.NodeProto, int]]:
    """Every (node, operand index) reading ``name`` or a pass-through copy of it."""
    pending, seen = deque([name]), {name}
    while pending:
        for node, index in readers.get(pending.popleft(), []):
            if node.op_type in PASS_THROUGH and index == 0 and node.output:
                if node.output[0] not in seen:
                    seen.add(node.output[0])
                    pending.append(node.output[0])
            else:
                yield node, index


def _table_rows(graph: onnx.GraphProto) -> dict[str, int | None]:
    """Rows (first dim) of initializers and Constant outputs: the tables a Gather can read."""
    rows: dict[str, int | None] = {
        i.name: int(i.dims[0]) if i.dims else None for i in graph.initializer
    }
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            rows[node.output[0]] = int(value.dims[0]) if value is not None and value.dims else None
    return rows


def _axis(node: onnx.NodeProto) -> int:
    return next((int(a.i) for a in node.attribute if a.name == "axis"), 0)
