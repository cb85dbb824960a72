"""The engine's entry for methods that need calibration data: load and check the dataset,
run the method on the selected tensors, and describe what was used for the report."""

from __future__ import annotations

import time
from typing import Any

from pruning.calibration.capture import layer_inputs
from pruning.calibration.dataset import load_calibration, require_calibration
from pruning.calibration.dense_outputs import DenseOutputs
from pruning.calibration.outputs import compare_on_data, first_outputs
from pruning.context import JobContext
from pruning.device import current_device
from pruning.errors import InvalidSpec
from pruning.layers import LayerPlan
from pruning.methods.calibrated import CALIBRATED, CalibratedJob
from pruning.models.base import ModelAdapter
from pruning.spec import PruneSpec
from pruning.structured.nm_layout import input_on_axis0


def needs_calibration(spec: PruneSpec) -> bool:
    return spec.method.name in CALIBRATED


def unscorable(
    model: ModelAdapter, plan: LayerPlan, spec: PruneSpec, input_names: list[str]
) -> dict[str, str]:
    """Selected tensors the spec's calibrated method cannot score, and why (a layer applied
    by an operator whose inputs have no layout the capture understands). The job prunes the
    others: one odd layer is no reason to refuse the rest of the model."""
    if not needs_calibration(spec) or spec.granularity == "channel":
        return {}
    if not CALIBRATED[spec.method.name].reads_layer_inputs:
        return {}
    found = layer_inputs(model, input_names).unscorable
    name = spec.method.name
    return {
        t.name: f"{name} cannot score it: {found[t.name]}" for t in plan.selected if t.name in found
    }


def prune_calibrated(ctx: JobContext, keep: DenseOutputs | None = None) -> dict[str, Any]:
    """Prune ``ctx.plan.selected`` in place; return the report's ``calibration`` block.
    ``keep`` receives the dense model's outputs on the calibration samples if the method's
    pass produced them (one-shot jobs: the engine measures the in-sample fidelity after
    saving)."""
    model, plan, spec, inputs, step = ctx.model, ctx.plan, ctx.spec, ctx.inputs, ctx.step
    name = spec.method.name
    path = require_calibration(name, spec.calibration, ctx.datasets)
    _check_granularity(spec, plan)
    assert spec.calibration is not None  # require_calibration checked it
    start = time.perf_counter()
    data = load_calibration(
        path, spec.calibration.dataset_id, spec.calibration.samples, inputs.inputs
    )
    load_s = time.perf_counter() - start
    method = CALIBRATED[name](**dict(spec.method.options))
    job = CalibratedJob(
        model=model,
        tensors=list(plan.selected),
        sparsity=spec.sparsity,
        scope=spec.scope,
        overrides=dict(plan.overrides),
        data=data,
        input_names=inputs.names,
        progress=lambda fraction, layer=None: step(
            "prune", fraction, {"method": name} | ({"layer": layer} if layer else {})
        ),
        nm=spec.nm,
        nm_columns=frozenset(input_on_axis0(model)) if spec.nm else frozenset(),
        device=current_device(),
        dense_outputs=keep if spec.retrain is None else None,
    )
    # A one-shot job saves these weights as they are: the engine measures the in-sample
    # fidelity on the saved artifact, once for this block and for the report's headline
    # (pruning.fidelity.measure_on_calibration). A retraining event's weights change after
    # it, so its fidelity is taken here, on the weights the event left.
    fidelity = None
    dense = first_outputs(model, data, inputs.names) if spec.retrain is not None else None
    notes = method.prune(job)
    if dense is not None:
        fidelity = compare_on_data(dense, first_outputs(model, data, inputs.names), data)
    return {**data.describe(), "data_load_s": round(load_s, 4), **notes, "fidelity": fidelity}


def _check_granularity(spec: PruneSpec, plan: LayerPlan) -> None:
    """Scores are per weight, so unstructured and n:m both apply (channel granularity is
    routed to ``pruning.structured`` before this); n:m prunes every layer alike."""
    if spec.granularity == "n:m" and plan.overrides:
        raise InvalidSpec(
            "granularity 'n:m' prunes every selected layer alike; drop layers.overrides",
            field="layers.overrides",
        )
