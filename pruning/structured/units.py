"""Heads and neurons as units read by one projection: what the data-driven ranking and the
least-squares rescale work on.

A unit is a slice of the input features of a projection MatMul (``x @ W``): a head is its
``head_dim`` consecutive features of the merged context, an MLP neuron one feature of the
activation the second linear layer reads. Removing the unit removes those rows of W.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pruning.structured.channels import IntArray
from pruning.structured.dependency import Dependencies, Source
from pruning.structured.graph import OnnxGraph
from pruning.structured.heads import AttentionBlock


@dataclass(frozen=True)
class Units:
    kind: str  # "head" | "neuron"
    key: int | str  # the group root (neurons) or the attention block's name (heads)
    label: str  # what the report calls the layer
    count: int
    width: int  # input features per unit
    reader: str  # the tensor the projection reads
    weight: str  # the projection's (in, out) weight
    bias: str | None  # the projection's bias (an Add of a constant vector after it)

    def features(self, keep: IntArray) -> IntArray:
        return (keep[:, None] * self.width + np.arange(self.width)).reshape(-1).astype(np.int64)


def head_units(graph: OnnxGraph, block: AttentionBlock) -> Units:
    node = graph.nodes[block.output_node]
    return Units(
        "head",
        block.name,
        block.softmax.rsplit("/", 1)[0] or block.softmax,
        block.heads,
        block.head_dim,
        block.merged,
        block.output_weight,
        output_bias(graph, node.output[0]),
    )


def neuron_units(
    graph: OnnxGraph, deps: Dependencies, root: int, sources: list[Source]
) -> Units | None:
    """An MLP's hidden neurons: one source, read by exactly one MatMul over the last axis."""
    if len(sources) != 1 or graph.nodes[sources[0].node].op_type not in ("MatMul", "Gemm"):
        return None
    readers = [
        s
        for s in deps.steps
        if s.role == "in"
        and graph.nodes[s.node].op_type == "MatMul"
        and root in deps.find.roots(s.channels.groups())
    ]
    if len(readers) != 1 or len(readers[0].channels.segments) != 1:
        return None
    node = graph.nodes[readers[0].node]
    source = graph.nodes[sources[0].node]
    return Units(
        "neuron",
        root,
        source.name or sources[0].weight,
        sources[0].channels,
        1,
        node.input[0],
        node.input[1],
        output_bias(graph, node.output[0]),
    )


def output_bias(graph: OnnxGraph, name: str) -> str | None:
    readers = [n for n in graph.nodes if name in n.input]
    if len(readers) != 1 or readers[0].op_type != "Add":
        return None
    other = next((n for n in readers[0].input if n != name), None)
    value = graph.constant(other) if other else None
    if other is None or value is None or value.ndim != 1 or graph.uses[other] != 1:
        return None
    return str(other)
