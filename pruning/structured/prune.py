"""The engine's entry for structured granularities: N:M masks for any scorer, and channel
pruning (ONNX: removed from the graph; TorchScript: a standard Sequential chain shrunk, any
other module's channels zeroed). Returns the report's ``structure`` block and saves the model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch

from pruning.context import JobContext
from pruning.errors import InvalidSpec
from pruning.inputs import InputPlan
from pruning.layers import LayerPlan
from pruning.masks.nm import prune_nm
from pruning.methods.base import Scorer
from pruning.models.base import ModelAdapter
from pruning.models.onnx_model import OnnxModel
from pruning.spec import PruneSpec
from pruning.structured.channel_importance import ChannelRanking, channel_ranking
from pruning.structured.channel_masks import ChannelMasks
from pruning.structured.hardware import explain
from pruning.structured.nm_layout import input_on_axis0
from pruning.structured.torchscript_channels import zero_channels
from pruning.structured.torchscript_heads import multihead_attention_units
from pruning.structured.torchscript_shrink import shrink_sequential
from pruning.structured.unit_job import prune_onnx_units, refuse_unit_options


@dataclass
class StructuredOutcome:
    report: dict[str, Any]
    proto: onnx.ModelProto | None = field(default=None, repr=False)  # a new, smaller graph
    calibration: dict[str, Any] | None = None  # the data a loss-based ranking used

    def save(self, model: ModelAdapter, out_dir: Path) -> Path:
        if self.proto is None:
            return model.save(out_dir)
        out = out_dir / f"model{model.suffix}"
        out.write_bytes(self.proto.SerializeToString())
        return out


def prune_structured(ctx: JobContext, scorer: Scorer | None) -> StructuredOutcome:
    """``scorer`` ranks weights for n:m; channels are ranked as ``channel_ranking`` says."""
    model, plan, spec, inputs = ctx.model, ctx.plan, ctx.spec, ctx.inputs
    if plan.overrides:
        raise InvalidSpec(
            f"granularity {spec.granularity!r} prunes every selected layer alike; "
            "drop layers.overrides",
            field="layers.overrides",
        )
    if spec.granularity == "n:m":
        assert scorer is not None
        return _nm(model, plan, spec, scorer)
    ranking = channel_ranking(model, plan, spec, inputs, ctx.datasets)
    outcome = _channels(model, plan, spec, inputs, ranking, ctx.datasets)
    outcome.calibration = outcome.calibration or ranking.calibration
    return outcome


def cut_masked_channels(ctx: JobContext, masks: ChannelMasks) -> StructuredOutcome:
    """After a channel schedule: cut the channels its last event zeroed, and no others."""
    model, plan, spec, inputs = ctx.model, ctx.plan, ctx.spec, ctx.inputs
    if isinstance(model, OnnxModel):
        model.store_weights()  # the trained values, which the surgery reads from the graph
    ranking = masks.final_ranking()
    outcome = _channels(model, masks.held_plan(plan), spec, inputs, ranking, scheduled=True)
    outcome.report["groups"] = masks.explain(outcome.report["groups"])
    outcome.calibration = ranking.calibration
    return outcome


def _nm(model: ModelAdapter, plan: LayerPlan, spec: PruneSpec, scorer: Scorer) -> StructuredOutcome:
    assert spec.nm is not None
    n, m = spec.nm
    layers = prune_nm(plan.selected, scorer, n, m, input_on_axis0(model))
    ready = [layer.name for layer in layers if layer.tensor_core_ready(n, m)]
    return StructuredOutcome(
        {
            "kind": "n:m",
            "n": n,
            "m": m,
            "convention": "n zeros in every m consecutive weights along each output's inputs",
            "layers": [
                {
                    "name": layer.name,
                    "outputs": layer.rows,
                    "inputs": layer.inputs,
                    "pruned": layer.pruned,
                    "reason": layer.reason,
                    "sparse_tensor_cores": layer.name in ready,
                }
                for layer in layers
            ],
            "sparse_tensor_core_layers": ready,
            "latency_explanation": explain("n:m"),
        }
    )


def _channels(
    model: ModelAdapter,
    plan: LayerPlan,
    spec: PruneSpec,
    inputs: InputPlan,
    rank: ChannelRanking,
    datasets: Mapping[str, Path] | None = None,
    scheduled: bool = False,
) -> StructuredOutcome:
    proto: Any = getattr(model, "proto", None)
    base = {"kind": "channel", "importance": rank.label, "scope": "per group"}
    if proto is None:
        refuse_unit_options(spec)
        return StructuredOutcome({**base, **_torchscript_channels(model, plan, spec, inputs, rank)})
    names = [t.name for t in plan.selected]
    result, extra = prune_onnx_units(
        proto, names, spec, inputs, datasets or {}, rank.importance, scheduled
    )
    calibration = extra.pop("calibration", None)
    base["scope"] = "global" if spec.units.allocation == "global" else "per group"
    report = {
        **base,
        "physically_smaller": result.parameters_after < result.parameters_before,
        "groups": [g.to_json() for g in result.groups],
        "parameters": {"before": result.parameters_before, "after": result.parameters_after},
        # On random inputs; 0 after a schedule, whose zeroed channels reached nothing.
        "output_change": result.output_change,
        "latency_explanation": explain("channel"),
        "units": result.units,
        **extra,
    }
    return StructuredOutcome(report, result.proto, calibration)


def _torchscript_channels(
    model: ModelAdapter, plan: LayerPlan, spec: PruneSpec, inputs: InputPlan, rank: ChannelRanking
) -> dict[str, Any]:
    """Shrink a standard Sequential chain; otherwise zero the channels (no speedup)."""
    before = model.parameter_count()
    groups = _shrink(model, plan, spec, inputs, rank)
    smaller = groups is not None
    if groups is None:
        groups = zero_channels(plan.selected, spec.sparsity, rank.importance)
    module: Any = getattr(model, "module", None)
    heads = multihead_attention_units(module) if module is not None else []
    return {
        "physically_smaller": smaller,
        "groups": groups,
        "parameters": {"before": before, "after": model.parameter_count()},
        "latency_explanation": explain("channel", physically_smaller=smaller),
        **({"units": heads} if heads else {}),
    }


def _shrink(
    model: ModelAdapter, plan: LayerPlan, spec: PruneSpec, inputs: InputPlan, rank: ChannelRanking
) -> list[dict[str, Any]] | None:
    module: Any = getattr(model, "module", None)
    feeds = inputs.feeds(1, seed=0)
    if module is None or isinstance(feeds, str) or len(feeds) != 1:
        return None
    example = torch.from_numpy(next(iter(feeds.values())))
    names = {t.name for t in plan.selected}
    return shrink_sequential(module, example, spec.sparsity, rank.importance, names)


__all__ = ["StructuredOutcome", "cut_masked_channels", "prune_structured"]
