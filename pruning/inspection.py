"""``inspect_model()``: what a model file is, as the API's Model resource shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pruning.models import ModelAdapter, detect_format, open_model
from pruning.models.onnx_model import OnnxModel
from pruning.streaming.graph import open_graph


def inspect_model(
    path: Path, fmt: str | None = None, measure_bytes: int | None = None
) -> dict[str, Any]:
    """Detect the format from content, open and validate the model, describe it as JSON.
    An ONNX model's weights are not loaded (``pruning.streaming.graph``)."""
    model: ModelAdapter
    if detect_format(Path(path), fmt) == OnnxModel.format:
        model = open_graph(Path(path), measure_bytes)
    else:
        model = open_model(Path(path), fmt)
    return {
        "format": model.format,
        "parameters": model.parameter_count(),
        "inputs": [s.to_json() for s in model.signature.inputs],
        "outputs": [s.to_json() for s in model.signature.outputs],
        "prunable": model.prunable_info(),
        "unused": [s.to_json() for s in model.skipped()],
        "opset": model.opset,
    }
