"""Tiny real models for tests, exported from torch the way users export theirs.

Imports torch lazily: a test of the API alone must be able to import tests.support.
"""

import warnings
from pathlib import Path
from typing import Any

INPUT_FEATURES = 16
OUTPUT_FEATURES = 4


def make_mlp(seed: int = 0) -> Any:
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(INPUT_FEATURES, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, OUTPUT_FEATURES),
    ).eval()


def export_onnx(model: Any, path: Path) -> Path:
    """ONNX with a symbolic batch dimension, input `x`, output `y`."""
    import torch

    example = torch.randn(1, INPUT_FEATURES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript-based exporter needs no onnxscript.
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
        )
    return path


def export_torchscript(model: Any, path: Path) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.randn(1, INPUT_FEATURES))  # type: ignore[no-untyped-call]
        traced.save(str(path))
    return path


def tiny_onnx(path: Path, seed: int = 0) -> Path:
    return export_onnx(make_mlp(seed), path)


def tiny_torchscript(path: Path, seed: int = 0) -> Path:
    return export_torchscript(make_mlp(seed), path)


# A small, fast spec for tests: the latency block is what costs time in a job.
FAST_SPEC: dict[str, Any] = {
    "method": {"name": "magnitude"},
    "sparsity": 0.5,
    "latency": {"batch_sizes": [1], "iterations": 5, "warmup": 1, "budget_s": 0},
}


def fast_spec(**overrides: Any) -> dict[str, Any]:
    """FAST_SPEC with overrides, e.g. `input_shapes=TORCHSCRIPT_INPUT_SHAPES` for TorchScript."""
    return {**FAST_SPEC, **overrides}


# torch.jit.trace names the input after forward()'s argument: `input` for nn.Sequential.
TORCHSCRIPT_INPUT_SHAPES = {"input": [1, INPUT_FEATURES]}
