"""The channel job on an ONNX graph with the transformer options: calibration batches for
``output_error``/``rescale``, and the ratio search of ``target``. Returns the pruning and the
report entries it adds (``units``, ``flops``, ``target``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from pruning.calibration.dataset import load_calibration, require_calibration
from pruning.errors import InvalidSpec, Unsupported
from pruning.inputs import InputPlan
from pruning.spec import PruneSpec
from pruning.structured.flops import count_flops
from pruning.structured.importance import Importance
from pruning.structured.onnx_channels import ChannelPruning, prune_onnx_channels
from pruning.structured.target import Target, search
from pruning.structured.transformer import UnitOptions


def prune_onnx_units(
    proto: onnx.ModelProto,
    names: list[str],
    spec: PruneSpec,
    inputs: InputPlan,
    datasets: Mapping[str, Path],
    importance: Importance,
    scheduled: bool = False,
) -> tuple[ChannelPruning, dict[str, Any]]:
    """``scheduled``: the cut after a channel schedule, which masked channels only: heads stay
    (training never silenced them) and the schedule's ranking decides."""
    if scheduled:
        options = UnitOptions(heads=False)
        result = prune_onnx_channels(proto, names, spec.sparsity, importance, options)
        return result, {"flops": _flops(proto, result.proto, inputs)}
    options, calibration = _options(spec, inputs, datasets)
    if importance == "output_error":
        importance = "l1"  # channels outside heads and MLPs: by their weights' norm

    def prune(ratio: float) -> ChannelPruning:
        return prune_onnx_channels(proto, names, ratio, importance, options)

    extra: dict[str, Any] = {}
    target = spec.units.target
    if target is None:
        result = prune(spec.sparsity)
    else:
        feeds = _batches(spec, inputs)
        threads = spec.latency.threads if spec.latency else 1
        result, extra["target"] = search(
            prune, proto, Target(target.kind, target.value), spec.sparsity, feeds, threads
        )
    extra["flops"] = _flops(proto, result.proto, inputs)
    if calibration is not None:
        extra["calibration"] = calibration
    return result, extra


def _options(
    spec: PruneSpec, inputs: InputPlan, datasets: Mapping[str, Path]
) -> tuple[UnitOptions, dict[str, Any] | None]:
    needs_data = spec.channel_importance == "output_error" or spec.units.rescale
    if not needs_data:
        return UnitOptions(allocation=spec.units.allocation), None
    if spec.calibration is None:
        raise InvalidSpec(
            "granularity importance 'output_error' and rescale need calibration data: set "
            '"calibration": {"dataset_id": "ds_...", "samples": 128}',
            field="calibration",
        )
    path = require_calibration("channel", spec.calibration, datasets)
    start = time.perf_counter()
    data = load_calibration(
        path, spec.calibration.dataset_id, spec.calibration.samples, inputs.inputs
    )
    batches = [feeds for feeds, _ in data.batches()]
    notes = {**data.describe(), "data_load_s": round(time.perf_counter() - start, 4)}
    ranked = spec.channel_importance == "output_error"
    options = UnitOptions(batches, spec.units.allocation, spec.units.rescale, ranked)
    if spec.units.rescale and not ranked:
        notes["note"] = "used for the least-squares rescale; heads ranked by weight norms"
    return options, notes


def _batches(spec: PruneSpec, inputs: InputPlan) -> list[dict[str, Any]]:
    sizes = spec.latency.batch_sizes if spec.latency else (1,)
    feeds = []
    for size in sizes:
        made = inputs.feeds(size, seed=0)
        if isinstance(made, str):
            raise InvalidSpec(f"target: no inputs at batch size {size} ({made})", field="latency")
        feeds.append(made)
    return feeds


def _flops(dense: onnx.ModelProto, pruned: onnx.ModelProto, inputs: InputPlan) -> Any:
    feeds = inputs.feeds(1, seed=0)
    if isinstance(feeds, str):
        return {"note": feeds}
    before, after = count_flops(dense, feeds), count_flops(pruned, feeds)
    return {
        "before": before,
        "after": after,
        "ratio": round(after / before, 4) if before else None,
        "batch_size": 1,
        "counted": "2*M*N*K of MatMul/Gemm, 2*outputs*fan-in of Conv, at batch 1",
    }


def refuse_unit_options(spec: PruneSpec) -> None:
    """TorchScript channels are ranked by weights only, with no search and no refit."""
    asked = [
        name
        for name, on in (
            ("granularity.importance", spec.channel_importance == "output_error"),
            ("granularity.rescale", spec.units.rescale),
            ("granularity.target", spec.units.target is not None),
        )
        if on
    ]
    if asked:
        raise Unsupported(
            f"{asked[0]} works on ONNX models (heads and neurons of the exported graph); "
            "export the model to ONNX or drop it for TorchScript",
            field=asked[0],
        )
