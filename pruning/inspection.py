"""``inspect_model()``: what a model file is, as the API's Model resource shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pruning.models import open_model


def inspect_model(path: Path, fmt: str | None = None) -> dict[str, Any]:
    """Detect the format from content, open and validate the model, describe it as JSON."""
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
