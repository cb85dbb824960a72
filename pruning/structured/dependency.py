"""What belongs together: follow every prunable layer's output channels through the graph.

One pass in topological order gives every activation tensor a ``ChannelMap`` and records a
``CutStep`` for every node whose parameters must be cut when a group loses channels
(Torch-Pruning's dependency graph, Fang et al. 2023, "DepGraph", on ONNX nodes). A node
without a rule below that reads mapped channels marks their groups as left alone, with the
reason: a group is never cut unless every consumer of its channels can be cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import onnx

from pruning.structured.channels import FIXED, ChannelMap, Segment, UnionFind
from pruning.structured.graph import OnnxGraph


@dataclass(frozen=True)
class CutStep:
    """Cut ``node``: ``out`` = its own output channels (a source), ``in`` = channels it reads."""

    node: int
    role: str
    channels: ChannelMap


@dataclass
class Source:
    weight: str
    node: int
    channels: int
    norm: int | None = None  # the BatchNormalization reading this layer's output directly


@dataclass
class Dependencies:
    find: UnionFind = field(default_factory=UnionFind)
    sources: dict[int, Source] = field(default_factory=dict)  # group id -> its layer
    steps: list[CutStep] = field(default_factory=list)
    unsafe: dict[int, str] = field(default_factory=dict)  # group id -> why it stays dense
    maps: dict[str, ChannelMap] = field(default_factory=dict)

    def refuse(self, groups: set[int], reason: str) -> None:
        for group in groups:
            self.unsafe.setdefault(group, reason)

    def new_source(self, weight: str, node: int, channels: int, rank: int, axis: int) -> ChannelMap:
        group = self.find.new()
        self.sources[group] = Source(weight, node, channels)
        cmap = ChannelMap(axis, rank, (Segment(group, channels),))
        self.steps.append(CutStep(node, "out", cmap))
        return cmap


Rule = Callable[[OnnxGraph, Dependencies, int, onnx.NodeProto], None]


def analyse(graph: OnnxGraph) -> Dependencies:
    from pruning.structured.rules import RULES  # rules use the types above

    deps = Dependencies()
    for index, node in enumerate(graph.nodes):
        rule = RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if rule is not None:
            rule(graph, deps, index, node)
        else:
            read = groups_of(deps, node)
            deps.refuse(
                read,
                f"operator {node.op_type} ({label(node)}) reads these channels "
                "and Shears has no rule to cut it",
            )
    for name in graph.outputs:
        if name in deps.maps:
            deps.refuse(
                deps.maps[name].groups(),
                f"its channels reach the model output {name!r}, whose shape must stay",
            )
    return deps


def input_map(deps: Dependencies, node: onnx.NodeProto, index: int = 0) -> ChannelMap | None:
    if len(node.input) <= index:
        return None
    return deps.maps.get(node.input[index])


def label(node: onnx.NodeProto) -> str:
    return f"node {node.name!r}" if node.name else f"output {node.output[0]!r}"


def fixed_map(channels: int, rank: int, axis: int) -> ChannelMap:
    return ChannelMap(axis, rank, (Segment(FIXED, channels),))


def owned(
    graph: OnnxGraph, deps: Dependencies, cmap: ChannelMap, node: onnx.NodeProto, *names: str
) -> bool:
    """A parameter that is cut must be read by this node only (and be a constant)."""
    shared = [n for n in names if n and (not graph.is_constant(n) or graph.uses[n] != 1)]
    if shared:
        deps.refuse(
            cmap.groups(),
            f"{node.op_type} {label(node)} has parameter {shared[0]!r} "
            "that is shared or not constant",
        )
    return not shared


def groups_of(deps: Dependencies, node: onnx.NodeProto) -> set[int]:
    groups: set[int] = set()
    for name in node.input:
        if name in deps.maps:
            groups |= deps.maps[name].groups()
    return groups
