"""Channel pruning of an ONNX graph: analyse groups, score channels, cut, verify.

The three questions stay apart (Torch-Pruning's split): ``dependency``/``rules`` say what
belongs together, ``importance`` how much each channel matters, ``cutters`` how to cut each
operator. The result is checked before anything is returned: the ONNX checker with full
shape inference, and ONNX Runtime running it with the dense model's inputs and output shapes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from pruning.errors import UnsupportedModel
from pruning.models.onnx_model import PARAMETER_TYPES, session_for
from pruning.structured.channels import IntArray
from pruning.structured.cutters import CUTTERS
from pruning.structured.dependency import Dependencies, Source, analyse
from pruning.structured.graph import OnnxGraph
from pruning.structured.heads import find_heads
from pruning.structured.importance import Importance, channels_to_keep, group_importance
from pruning.structured.transformer import UnitOptions, plan_units


@dataclass(frozen=True)
class GroupOutcome:
    """One channel group: the layers whose outputs it ties, and what happened to it."""

    layers: list[str]
    channels: int
    kept: int
    reason: str | None  # why it was left dense; None when it was cut (or s rounds to 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "channels": self.channels,
            "kept": self.kept,
            "pruned": self.kept < self.channels,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ChannelPruning:
    proto: onnx.ModelProto
    groups: list[GroupOutcome]
    parameters_before: int
    parameters_after: int
    output_change: float  # max |pruned - unpruned| over the outputs on the verification run
    units: list[dict[str, Any]] = field(default_factory=list)  # heads and neurons per layer


def prune_onnx_channels(
    proto: onnx.ModelProto,
    selected: Collection[str],
    sparsity: float,
    importance: Importance,
    units: UnitOptions | None = None,
) -> ChannelPruning:
    """A physically smaller copy of ``proto``: ``sparsity`` of the channels of every safe
    group whose layers are all in ``selected`` removed, with every consumer shrunk, and the
    same fraction of the heads of every attention block (``units`` says how they and MLP
    neurons are ranked and whether what is kept is refitted)."""
    pruned = onnx.ModelProto()
    pruned.CopyFrom(proto)
    graph = OnnxGraph(pruned)
    deps = analyse(graph)
    heads = find_heads(graph)
    outcomes, keep = decide_channels(graph, deps, set(selected), sparsity, importance)
    plan = plan_units(
        graph, deps, heads, set(selected), sparsity, units or UnitOptions(), keep, _members(deps)
    )
    outcomes = _resize([o for o in outcomes if not set(o.layers) & plan.covered], keep, deps)
    for step in deps.steps:
        positions = step.channels.kept_positions(keep, deps.find)
        if positions.size == step.channels.size:
            continue
        node = graph.nodes[step.node]
        cutter = CUTTERS[node.op_type]
        cut = cutter.prune_out_channels if step.role == "out" else cutter.prune_in_channels
        assert cut is not None, f"no {step.role} cut for {node.op_type}"
        cut(graph, node, positions, step.channels)
    plan.cut(graph)
    drop_unused_constants(pruned)
    del pruned.graph.value_info[:]  # shapes of cut tensors changed: inferred afresh
    change = verify_same_signature(proto, pruned)
    before, after = parameter_count(proto), parameter_count(pruned)
    return ChannelPruning(pruned, outcomes, before, after, change, plan.report)


def _members(deps: Dependencies) -> dict[int, list[Source]]:
    members: dict[int, list[Source]] = defaultdict(list)
    for group, source in deps.sources.items():
        members[deps.find.root(group)].append(source)
    return members


def _resize(
    outcomes: list[GroupOutcome], keep: dict[int, IntArray], deps: Dependencies
) -> list[GroupOutcome]:
    """The kept counts after ``plan_units`` re-decided the neurons with data."""
    by_layer = {s.weight: deps.find.root(g) for g, s in deps.sources.items()}
    resized = []
    for o in outcomes:
        root = by_layer.get(o.layers[0])
        kept = int(keep[root].size) if root in keep and o.reason is None else o.kept
        resized.append(GroupOutcome(o.layers, o.channels, kept, o.reason))
    return resized


def drop_unused_constants(proto: onnx.ModelProto) -> None:
    """Shape Constant nodes the head cut replaced are read by nothing any more
    (initializers stay: an unread one may be a parameter the report lists)."""
    read = {name for node in proto.graph.node for name in node.input}
    read |= {o.name for o in proto.graph.output}
    nodes = [n for n in proto.graph.node if n.op_type != "Constant" or n.output[0] in read]
    if len(nodes) != len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)


def decide_channels(
    graph: OnnxGraph,
    deps: Dependencies,
    selected: set[str],
    sparsity: float,
    importance: Importance,
) -> tuple[list[GroupOutcome], dict[int, IntArray]]:
    """Every group's outcome, and the channels kept by each group root that is cut."""
    members: dict[int, list[Source]] = defaultdict(list)
    reasons: dict[int, str] = {}
    for group, source in deps.sources.items():
        root = deps.find.root(group)
        members[root].append(source)
        if group in deps.unsafe:
            reasons.setdefault(root, deps.unsafe[group])
    outcomes, keep = [], {}
    for root, sources in members.items():
        names = [s.weight for s in sources]
        reason = reasons.get(root) or _not_selected(names, selected)
        channels = sources[0].channels
        if reason is None:
            keep[root] = channels_to_keep(group_importance(graph, sources, importance), sparsity)
        kept = int(keep[root].size) if root in keep else channels
        outcomes.append(GroupOutcome(names, channels, kept, reason))
    return outcomes, keep


def _not_selected(names: list[str], selected: set[str]) -> str | None:
    left_out = [n for n in names if n not in selected]
    if left_out:
        return f"layer {left_out[0]!r} is not selected by layers.include/exclude"
    return None


def verify_same_signature(dense: onnx.ModelProto, pruned: onnx.ModelProto) -> float:
    """Checker, strict shape inference, and one ONNX Runtime run with the same outputs;
    returns how far the outputs moved on that run (0 when the cut channels were silent)."""
    try:
        onnx.checker.check_model(pruned, full_check=True)
        expected = _run(dense)
        got = _run(pruned)
    except Exception as exc:  # checker, inference and ORT each raise their own types
        raise UnsupportedModel(
            f"channel pruning could not produce a valid model ({exc}); "
            "use granularity 'unstructured' for this model"
        ) from exc
    if [(a.shape, a.dtype) for a in expected] != [(a.shape, a.dtype) for a in got]:
        raise UnsupportedModel(
            "channel pruning changed the model's output shapes; "
            "use granularity 'unstructured' for this model"
        )
    moved = [np.abs(a.astype(np.float64) - b) for a, b in zip(expected, got, strict=True)]
    return max((float(m.max(initial=0.0)) for m in moved), default=0.0)


def _run(proto: onnx.ModelProto) -> list[np.ndarray[Any, Any]]:
    session = session_for(proto.SerializeToString(), threads=1)
    feeds = {}
    for value in session.get_inputs():
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in value.shape]
        dtype = np.dtype(_ORT_TYPES.get(value.type, "float32"))
        # Integer inputs (ids, indices) get zeros: always in range.
        sample = np.random.default_rng(0).standard_normal(dims) if dtype.kind == "f" else 0
        feeds[value.name] = np.zeros(dims, dtype) + np.asarray(sample, dtype)
    return [np.asarray(out) for out in session.run(None, feeds)]


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
}


def parameter_count(proto: onnx.ModelProto) -> int:
    return sum(
        int(np.prod(i.dims, dtype=np.int64))
        for i in proto.graph.initializer
        if i.data_type in PARAMETER_TYPES
    )
