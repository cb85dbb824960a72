"""One entry point for layer-input capture, whatever the model's format."""

from __future__ import annotations

from collections.abc import Sequence

from pruning.calibration.onnx_capture import Capture, OnnxLayerInputs
from pruning.calibration.torchscript_capture import TorchScriptLayerInputs
from pruning.errors import Unsupported
from pruning.models.base import ModelAdapter
from pruning.models.onnx_model import OnnxModel
from pruning.models.torchscript_model import TorchScriptModel

LayerInputs = OnnxLayerInputs | TorchScriptLayerInputs


def layer_inputs(model: ModelAdapter, input_names: Sequence[str]) -> LayerInputs:
    if isinstance(model, OnnxModel):
        return OnnxLayerInputs(model)
    if isinstance(model, TorchScriptModel):
        return TorchScriptLayerInputs(model, input_names)
    raise Unsupported(f"calibration is not available for {model.format} models")


__all__ = ["Capture", "LayerInputs", "layer_inputs"]
