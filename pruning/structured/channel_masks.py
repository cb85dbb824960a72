"""Channels zeroed, not cut, at the pruning events of an iterative or gradual schedule
(issue 17): the model keeps its shapes while it trains, and the channels of lowest
importance are held at zero on both sides: in the weights that make them and in the inputs
of the layers that read them. Whatever a zeroed channel's bias or batch norm still adds,
nothing downstream sees it, so the masked model computes what the cut model will. When
training ends, ``ChannelMasks.ranking`` has the usual surgery cut exactly these channels.

Zeroed channels score lowest at the next event (their norm, and their Taylor score
|g * w|, is 0), so a schedule's masks only grow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch

from pruning.context import JobContext
from pruning.inputs import InputPlan
from pruning.layers import LayerPlan
from pruning.models.base import ModelAdapter
from pruning.models.onnx_model import OnnxModel
from pruning.structured.channel_importance import ChannelRanking, channel_ranking
from pruning.structured.channels import IntArray
from pruning.structured.dependency import Dependencies, analyse
from pruning.structured.graph import OnnxGraph, attribute
from pruning.structured.importance import (
    ChannelScores,
    Importance,
    channel_scores,
    channels_to_keep,
)
from pruning.structured.onnx_channels import decide_channels
from pruning.structured.torchscript_channels import zero_channels
from pruning.structured.torchscript_shrink import ChainCut, chain_cuts
from pruning.tensors import FloatArray, WeightTensor


@dataclass(frozen=True)
class ChannelMasks:
    """One event's zeroed channels: the structure block's ``groups``, and a score per
    channel of every producing weight whose group was pruned: 0 zeroed, 1 kept."""

    groups: list[dict[str, Any]]
    kept: Mapping[str, FloatArray]
    ranking: ChannelRanking
    unheld: Mapping[str, str]  # producing weight -> why its group stays dense

    def held_plan(self, plan: LayerPlan) -> LayerPlan:
        """The plan without the layers whose channels could not be held at zero."""
        selected = [t for t in plan.selected if t.name not in self.unheld]
        return dataclasses.replace(plan, selected=selected)

    def explain(self, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Groups that ``held_plan`` left out were selected: say why they stay dense."""
        return [explained(g, self.unheld) for g in groups]

    def final_ranking(self) -> ChannelRanking:
        """The cut keeps count - round(s * C) channels of best score, the count this event
        kept with the same s: exactly the channels left alive."""
        scores: ChannelScores = dict(self.kept)
        return ChannelRanking(scores, self.ranking.label, self.ranking.calibration)


def mask_channels(ctx: JobContext) -> ChannelMasks:
    """Zero ``spec.sparsity`` of the channels of every prunable group, in the adapter's
    arrays (the training loop loads them into torch and holds them at zero)."""
    model, plan, spec, inputs = ctx.model, ctx.plan, ctx.spec, ctx.inputs
    if isinstance(model, OnnxModel):
        model.store_weights()  # rankings and the graph analysis read the initializers
    ranking = channel_ranking(model, plan, spec, inputs, ctx.datasets)
    weights = {t.name: t for t in model.prunable()}
    selected = {t.name for t in plan.selected}
    if isinstance(model, OnnxModel):
        found = _onnx(model.proto, selected, spec.sparsity, ranking.importance, weights)
        return ChannelMasks(*found[:2], ranking, found[2])
    cuts = _chain(model, inputs)
    if cuts is None:  # not a chain: the output channels alone, as the one-shot cut does
        groups = zero_channels(plan.selected, spec.sparsity, ranking.importance)
        return ChannelMasks(groups, _alive_rows(plan.selected), ranking, {})
    found = _torchscript(cuts, selected, spec.sparsity, ranking.importance, weights)
    return ChannelMasks(*found[:2], ranking, found[2])


_Found = tuple[list[dict[str, Any]], dict[str, FloatArray], dict[str, str]]


def _unheld(graph: OnnxGraph, deps: Dependencies, selected: Collection[str]) -> dict[str, str]:
    """Producing weight -> why its group stays dense: a layer outside the selection reads
    its channels, and training holds only selected weights at zero."""
    roots: dict[int, str] = {}
    for step in deps.steps:
        node = graph.nodes[step.node]
        weight = node.input[1] if len(node.input) > 1 else ""
        if step.role == "in" and weight_axis(node, "in") is not None and weight not in selected:
            for root in deps.find.roots(step.channels.groups()):
                roots.setdefault(root, _unheld_reason(weight))
    return {
        source.weight: roots[deps.find.root(group)]
        for group, source in deps.sources.items()
        if deps.find.root(group) in roots
    }


def _onnx(
    proto: onnx.ModelProto,
    selected: Collection[str],
    sparsity: float,
    importance: Importance,
    weights: Mapping[str, WeightTensor],
) -> _Found:
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)  # the graph index rewrites what it reads (identities, shared vectors)
    graph = OnnxGraph(copy)
    deps = analyse(graph)
    unheld = _unheld(graph, deps, selected)
    held = set(selected) - set(unheld)
    outcomes, keep = decide_channels(graph, deps, held, sparsity, importance)
    for step in deps.steps:
        kept = step.channels.kept_positions(keep, deps.find)
        node = graph.nodes[step.node]
        axis = weight_axis(node, step.role)
        tensor = weights.get(node.input[1]) if axis is not None else None
        if tensor is not None and axis is not None and kept.size < step.channels.size:
            _zero_along(tensor.values, axis, np.setdiff1d(np.arange(step.channels.size), kept))
    kept_scores = {
        source.weight: _indicator(source.channels, keep[deps.find.root(group)])
        for group, source in deps.sources.items()
        if deps.find.root(group) in keep
    }
    return [explained(g.to_json(), unheld) for g in outcomes], kept_scores, unheld


def weight_axis(node: onnx.NodeProto, role: str) -> int | None:
    """The axis of the node's weight (input 1) that carries the channels a cut takes
    (``pruning.structured.cutters``). Batch norms, per-channel constants and reshapes have
    none to mask: they only read channels that a masked weight silences downstream."""
    op = node.op_type
    if op == "Conv":  # a depthwise conv's input channel i is its output channel i
        return 0 if role == "out" or int(attribute(node, "group", 1)) != 1 else 1
    if op == "Gemm":
        transposed = bool(attribute(node, "transB", 0))
        return int(transposed) if role == "in" else int(not transposed)
    if op == "MatMul":
        return 1 if role == "out" else 0
    return None


def _chain(model: ModelAdapter, inputs: InputPlan) -> list[ChainCut] | None:
    module: Any = getattr(model, "module", None)
    feeds = inputs.feeds(1, seed=0)
    if module is None or isinstance(feeds, str) or len(feeds) != 1:
        return None
    return chain_cuts(module, torch.from_numpy(next(iter(feeds.values()))))


def _torchscript(
    cuts: list[ChainCut],
    selected: Collection[str],
    sparsity: float,
    importance: Importance,
    weights: Mapping[str, WeightTensor],
) -> _Found:
    groups, kept_scores, unheld = [], {}, {}
    for cut in cuts:
        name, consumer_name = f"{cut.layer}.weight", f"{cut.consumer}.weight"
        producer = weights[name].values
        channels = int(producer.shape[0])
        group = {"layers": [name], "channels": channels, "kept": channels, "pruned": False}
        if name not in selected:
            reason = f"layer {name!r} is not selected by layers.include/exclude"
            groups.append({**group, "reason": reason})
            continue
        if consumer_name not in selected:
            unheld[name] = _unheld_reason(consumer_name)
            groups.append({**group, "reason": unheld[name]})
            continue
        rows = producer.reshape(channels, -1)
        keep = channels_to_keep(channel_scores(importance, name, rows), sparsity)
        dropped = np.setdiff1d(np.arange(channels), keep)
        producer[dropped] = 0
        columns = (dropped[:, None] * cut.block + np.arange(cut.block)).reshape(-1)
        weights[consumer_name].values[:, columns] = 0
        kept_scores[name] = _indicator(channels, keep)
        pruned = int(keep.size) < channels
        groups.append({**group, "kept": int(keep.size), "pruned": pruned, "reason": None})
    return groups, kept_scores, unheld


def _unheld_reason(reader: str) -> str:
    return (
        f"layer {reader!r} reads these channels and is not selected, so training could not "
        "hold its inputs from them at zero"
    )


def explained(group: dict[str, Any], unheld: Mapping[str, str]) -> dict[str, Any]:
    why = next((unheld[name] for name in group["layers"] if name in unheld), None)
    return group if why is None else {**group, "reason": why}


def _alive_rows(tensors: list[WeightTensor]) -> dict[str, FloatArray]:
    alive = {}
    for t in tensors:
        rows = np.abs(t.values.reshape(t.values.shape[0], -1)).sum(axis=1)
        alive[t.name] = (rows > 0).astype(np.float64)
    return alive


def _indicator(channels: int, keep: IntArray) -> FloatArray:
    scores = np.zeros(channels, np.float64)
    scores[keep] = 1.0
    return scores


def _zero_along(values: np.ndarray[Any, Any], axis: int, positions: IntArray) -> None:
    index: list[Any] = [slice(None)] * values.ndim
    index[axis] = positions
    values[tuple(index)] = 0


__all__ = ["ChannelMasks", "mask_channels", "weight_axis"]
