"""Small real models and their exports, for the engine's tests (no downloads, seconds)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

FAST_LATENCY = {"batch_sizes": [1, 4], "threads": 1, "warmup": 1, "iterations": 3, "budget_s": 0}


def make_mlp(seed: int = 0) -> nn.Module:
    """Two Linear layers of different sizes: 32 -> 64 -> 10."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


def make_convnet(seed: int = 0) -> nn.Module:
    """Conv + BatchNorm + Conv + Linear on 3x16x16 images."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    with torch.no_grad():  # non-trivial BN statistics, so folding them would show
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


class EmbeddingClassifier(nn.Module):
    """Token ids -> embedding -> mean -> Linear: an embedding that must not be pruned."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(50, 16)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.embed(ids).mean(dim=1)))


def example_input(model: nn.Module) -> torch.Tensor:
    if isinstance(model, EmbeddingClassifier):
        return torch.zeros(2, 5, dtype=torch.int64)
    first = next(m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d))
    if isinstance(first, nn.Conv2d):
        return torch.randn(2, 3, 16, 16)
    return torch.randn(2, first.in_features)


def export_onnx(model: nn.Module, path: Path, dynamic_batch: bool = True) -> Path:
    axes = {"x": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example_input(model),),
            str(path),
            dynamo=False,  # the TorchScript-based exporter: no onnxscript needed
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes=axes,
            do_constant_folding=False,  # keep BatchNorm as its own node
        )
    return path


def export_torchscript(
    model: nn.Module, path: Path, how: str = "trace", inputs_json: list[Any] | None = None
) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = (
            torch.jit.trace(model, example_input(model))
            if how == "trace"
            else torch.jit.script(model)
        )
        extras = {"shears/inputs.json": json.dumps(inputs_json)} if inputs_json else {}
        torch.jit.save(module, str(path), _extra_files=extras)
    return path


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path))


def fast_spec(**fields: Any) -> dict[str, Any]:
    return {"sparsity": 0.8, "latency": dict(FAST_LATENCY), **fields}
