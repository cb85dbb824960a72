"""Trained digits models exported once per test module, and specs for the quality options
(allocation, refine, the sparsity search)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch import nn

from tests.engine.factories import FAST_LATENCY
from tests.engine.training_factories import (
    digits,
    digits_datasets,
    export_digits,
    make_digits_convnet,
    make_digits_mlp,
    trained,
    weights_of,
)

FORMATS = [".onnx", ".pt"]


def exported(
    factory: pytest.TempPathFactory, model: nn.Module, suffix: str
) -> tuple[Path, dict[str, Path]]:
    folder = factory.mktemp(f"model{suffix.replace('.', '_')}")
    path = export_digits(model, folder / f"model{suffix}")
    return path, digits_datasets(folder, path)


def convnet() -> nn.Module:
    return trained(make_digits_convnet(), epochs=3)


def mlp() -> nn.Module:
    return trained(make_digits_mlp(), epochs=3)


def quality_spec(**fields: Any) -> dict[str, Any]:
    return {
        "method": {"name": "wanda"},
        "sparsity": 0.7,
        "scope": "layerwise",
        "calibration": {"dataset_id": "ds_train", "samples": 128},
        "latency": dict(FAST_LATENCY, batch_sizes=[1]),
        **fields,
    }


def zeros_of(path: Path, names: list[str]) -> dict[str, int]:
    return {n: int(np.sum(w == 0)) for n, w in weights_of(path, names).items()}


def first_layer_error(dense: Path, pruned: Path, name: str, samples: int = 128) -> float:
    """``||X W0^T - X W^T||^2`` of the MLP's first Linear on the calibration images."""
    x = digits()[0][:samples].reshape(samples, -1).astype(np.float64)
    w0 = weights_of(dense, [name])[name].astype(np.float64)
    w = weights_of(pruned, [name])[name].astype(np.float64)
    return float(np.sum((x @ w0.T - x @ w.T) ** 2))
