"""One entry point for layer-input capture, whatever the model's format."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pruning.calibration.dataset import CalibrationData
from pruning.calibration.onnx_capture import Capture, OnnxLayerInputs
from pruning.calibration.onnx_segments import OnnxSegments, segmentable
from pruning.calibration.segments import Group
from pruning.calibration.torchscript_capture import TorchScriptLayerInputs
from pruning.calibration.torchscript_segments import ScriptSegments, script_segmentable
from pruning.errors import Unsupported
from pruning.models.base import ModelAdapter
from pruning.models.onnx_model import OnnxModel
from pruning.models.torchscript_model import TorchScriptModel

LayerInputs = OnnxLayerInputs | TorchScriptLayerInputs


def layer_inputs(
    model: ModelAdapter, input_names: Sequence[str], names: Sequence[str] = ()
) -> LayerInputs:
    """The layer-input capture of ``model``; each of ``names`` must be one it can capture
    (the engine skips the others before a method sees them)."""
    inputs: LayerInputs
    if isinstance(model, OnnxModel):
        inputs = OnnxLayerInputs(model)
    elif isinstance(model, TorchScriptModel):
        inputs = TorchScriptLayerInputs(model, input_names)
    else:
        raise Unsupported(f"calibration is not available for {model.format} models")
    for name in names:
        if name in inputs.unscorable:
            raise Unsupported(
                f"layer {name!r} cannot be calibrated: {inputs.unscorable[name]}; exclude "
                "it with layers.exclude",
                field="layers",
            )
    return inputs


def layer_sequence(
    inputs: LayerInputs, names: Sequence[str], data: CalibrationData
) -> Iterator[Group]:
    """Groups of layers with their input per calibration chunk, each captured with every
    layer before it as the caller left it: prune a group before asking for the next.

    Graphs run segment by segment (one forward of each segment in all); graphs the cutter
    cannot split (ONNX subgraphs, TorchScript layers inside control flow) run the whole
    model once per layer, from the current weights."""
    if isinstance(inputs, OnnxLayerInputs) and segmentable(inputs):
        yield from OnnxSegments(inputs, names).groups(data)
    elif isinstance(inputs, TorchScriptLayerInputs) and script_segmentable(inputs, names):
        yield from ScriptSegments(inputs, names).groups(data)
    else:
        yield from whole_model_sequence(inputs, names, data)


def whole_model_sequence(
    inputs: LayerInputs, names: Sequence[str], data: CalibrationData
) -> Iterator[Group]:
    """The naive sequential scheme: for each layer, the whole model from the current weights
    (one model forward per layer; kept for graphs that cannot be cut, and as the reference
    that tests and ``bench/job_speed.py`` compare the segments with)."""
    for name in names:
        capture = inputs.open([name])
        yield [name], [capture(feeds)[name] for feeds, _ in data.batches()]


__all__ = [
    "Capture",
    "Group",
    "LayerInputs",
    "layer_inputs",
    "layer_sequence",
    "whole_model_sequence",
]
