"""Heads and neurons of a transformer graph: which to keep, ranked by weight norms or by
calibration data, and the least-squares rescale of what is kept. Called by
``onnx_channels.prune_onnx_channels`` between the analysis and the cut."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pruning.structured.allocation import allocate
from pruning.structured.channels import IntArray
from pruning.structured.dependency import Dependencies, Source
from pruning.structured.graph import OnnxGraph
from pruning.structured.heads import AttentionBlock, HeadAnalysis, block_weights, cut_heads
from pruning.structured.rescale import Feeds, collect, refit, unit_scores
from pruning.structured.units import Units, head_units, neuron_units


@dataclass(frozen=True)
class UnitOptions:
    """``batches``: calibration inputs (None: heads ranked by weight norms, neurons as the
    channel importance says); ``allocation``: 'uniform' or 'global'; ``rescale``: refit the
    projections reading kept units (needs ``batches``)."""

    batches: Sequence[Feeds] | None = None
    allocation: str = "uniform"
    rescale: bool = False
    ranked: bool = True  # rank by ``batches`` (False: they serve the rescale only)
    heads: bool = True  # False after a channel schedule, which never masked heads


@dataclass
class UnitPlan:
    heads: list[tuple[AttentionBlock, IntArray]] = field(default_factory=list)
    report: list[dict[str, Any]] = field(default_factory=list)  # one entry per layer
    covered: set[str] = field(default_factory=set)  # q/k/v weights: reported as heads

    def cut(self, graph: OnnxGraph) -> None:
        for block, keep in self.heads:
            if keep.size < block.heads:
                cut_heads(graph, block, keep)


def plan_units(
    graph: OnnxGraph,
    deps: Dependencies,
    analysis: HeadAnalysis,
    selected: set[str],
    sparsity: float,
    options: UnitOptions,
    keep: dict[int, IntArray],
    members: dict[int, list[Source]],
) -> UnitPlan:
    """Decide the heads; with data, re-decide the neurons of MLP groups in ``keep`` (in place)
    and refit. Must run before any cut (the refit reads dense weights)."""
    plan = UnitPlan()
    blocks = []
    for block in analysis.blocks:
        plan.covered |= {p.weight for p in block.projections}
        left_out = sorted(block_weights(block) - selected)
        if not options.heads:
            plan.report.append(
                _entry(
                    "head",
                    block.softmax,
                    block.heads,
                    block.heads,
                    "a channel schedule masks channels, not heads; "
                    "heads are removed by one-shot channel jobs",
                )
            )
        elif left_out:
            plan.report.append(
                _entry(
                    "head",
                    block.softmax,
                    block.heads,
                    block.heads,
                    f"layer {left_out[0]!r} is not selected",
                )
            )
        else:
            blocks.append(block)
    for softmax, reason in analysis.refused.items():
        plan.report.append(_entry("head", softmax, None, None, reason))
    heads = {b.name: head_units(graph, b) for b in blocks}
    neurons = {
        root: units
        for root in keep
        if (units := neuron_units(graph, deps, root, members[root])) is not None
    }
    every = [*heads.values(), *neurons.values()]
    data = _activations(graph, every, options.batches)
    ranking = data if options.ranked else None
    head_scores = {k: _scores(graph, u, ranking) for k, u in heads.items()}
    head_keep = allocate(head_scores, sparsity, options.allocation)
    if ranking is not None:
        scores = {k: _scores(graph, u, data) for k, u in neurons.items()}
        keep.update(allocate(scores, sparsity, options.allocation))
    for block in blocks:
        plan.heads.append((block, head_keep[block.name]))
    chosen: list[tuple[Units, IntArray]] = [(u, head_keep[k]) for k, u in heads.items()]
    chosen += [(u, keep[k]) for k, u in neurons.items()]
    fits: dict[str, dict[str, float]] = {}
    if options.rescale and data is not None and options.batches is not None:
        fits = _refit_in_order(graph, chosen, data, options.batches)
    for units, kept in chosen:
        entry = _entry(units.kind, units.label, units.count, int(kept.size), None)
        if units.weight in fits:
            entry["rescale"] = fits[units.weight]
        plan.report.append(entry)
    return plan


def _refit_in_order(
    graph: OnnxGraph,
    chosen: list[tuple[Units, IntArray]],
    dense: dict[str, Any],
    batches: Sequence[Feeds],
) -> dict[str, dict[str, float]]:
    """Refit projections in graph order, each on the inputs it gets once the layers before it
    are cut (removed rows zeroed, which the cut tests show is the same function), towards the
    dense model's output of that projection: errors do not pile up layer after layer."""
    order = {n.input[1]: i for i, n in enumerate(graph.nodes) if len(n.input) > 1}
    fits = {}
    for units, kept in sorted(chosen, key=lambda c: order.get(c[0].weight, 0)):
        if kept.size == units.count:
            continue
        weight = graph.constant(units.weight)
        assert weight is not None
        target = dense[units.reader] @ np.asarray(weight, np.float64)
        now = collect(graph.proto, [units.reader], batches)[units.reader]
        fits[units.weight] = refit(graph, units, now, kept, target)
    return fits


def _activations(
    graph: OnnxGraph, units: list[Units], batches: Sequence[Feeds] | None
) -> dict[str, Any] | None:
    if batches is None or not units:
        return None
    return collect(graph.proto, [u.reader for u in units], batches)


def _scores(graph: OnnxGraph, units: Units, data: dict[str, Any] | None) -> Any:
    weight = graph.constant(units.weight)
    assert weight is not None
    if data is not None:
        return unit_scores(units, data[units.reader], weight)
    # Without data: the L1 norm of the rows each head owns in Wo (and of its q/k/v columns
    # would double count the same head): Michel et al. find weight norms a weak but free proxy.
    rows = np.abs(np.asarray(weight, np.float64)).sum(axis=1)
    return rows.reshape(units.count, units.width).sum(axis=1)


def _entry(
    kind: str,
    layer: str,
    count: int | None,
    kept: int | None,
    reason: str | None,
    fit: dict[str, float] | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": kind, "layer": layer, "units": count, "kept": kept}
    entry["removed"] = None if count is None or kept is None else count - kept
    entry["reason"] = reason
    if fit is not None:
        entry["rescale"] = fit
    return entry


__all__ = ["UnitOptions", "UnitPlan", "plan_units"]
