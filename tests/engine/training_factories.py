"""Small real models trained on load_digits (8x8 images, 10 classes) and their datasets, for
the retraining tests: offline, seconds on one core."""

from __future__ import annotations

import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from sklearn.datasets import load_digits
from torch import nn

from tests.engine.factories import FAST_LATENCY, load_torchscript, run_onnx


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Images [1797, 1, 8, 8] scaled to [0, 1] in a fixed shuffled order, and int64 labels."""
    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    images = (bunch.images[order] / 16.0).astype(np.float32)[:, None]
    return images, bunch.target[order].astype(np.int64)


def make_digits_convnet(batch_norm: bool = True, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(1, 16, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(16))
    layers += [
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    ]
    return nn.Sequential(*layers)


def make_digits_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def trained(model: nn.Module, epochs: int = 8, train: int = 1400) -> nn.Module:
    """Fit on the first ``train`` digits with Adam; returns the model in eval mode."""
    images, labels = digits()
    x, y = torch.from_numpy(images[:train]), torch.from_numpy(labels[:train])
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(train, generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    return model.eval()


def digits_dataset(
    path: Path, part: str = "train", labels: bool = True, input_name: str = "x"
) -> Path:
    """``train``: the first 1400 digits; ``test``: the other 397."""
    images, classes = digits()
    window = slice(0, 1400) if part == "train" else slice(1400, None)
    arrays: dict[str, Any] = {input_name: images[window]}
    if labels:
        arrays["labels"] = classes[window]
    np.savez(path, **arrays)
    return path


def example_digits() -> torch.Tensor:
    return torch.from_numpy(digits()[0][:2])


def retrain_spec(sparsity: float, schedule: dict[str, Any], **retrain: Any) -> dict[str, Any]:
    return {
        "sparsity": sparsity,
        "schedule": schedule,
        "retrain": {"dataset_id": "ds_train", "epochs": 3, "lr": 1e-3, "batch_size": 64, **retrain},
        "evaluation": {"dataset_id": "ds_test", "metric": "accuracy"},
        "latency": dict(FAST_LATENCY, batch_sizes=[1]),
    }


def export_digits(model: nn.Module, path: Path) -> Path:
    """ONNX (input ``x``, dynamic batch, BatchNorm kept as a node) or traced TorchScript
    (input ``input``), by the path's suffix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.suffix == ".onnx":
            torch.onnx.export(
                model,
                (example_digits(),),
                str(path),
                dynamo=False,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                do_constant_folding=False,
            )
        else:
            torch.jit.save(torch.jit.trace(model, example_digits()), str(path))
    return path


def input_name(path: Path) -> str:
    return "x" if path.suffix == ".onnx" else "input"


def digits_datasets(folder: Path, model_path: Path, labels: bool = True) -> dict[str, Path]:
    """``ds_train`` (1400 digits, with or without labels) and ``ds_test`` (397, labelled)."""
    name = input_name(model_path)
    return {
        "ds_train": digits_dataset(folder / "train.npz", "train", labels, name),
        "ds_test": digits_dataset(folder / "test.npz", "test", True, name),
    }


def outputs_of(path: Path, images: np.ndarray) -> np.ndarray:
    """The saved model's first output, run the way a user would run the download."""
    if path.suffix == ".onnx":
        return run_onnx(path, images)
    with torch.no_grad():
        return load_torchscript(path)(torch.from_numpy(images)).numpy()


def held_out_accuracy(path: Path) -> float:
    images, labels = digits()
    return float(np.mean(outputs_of(path, images[1400:]).argmax(axis=1) == labels[1400:]))


def weights_of(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    if path.suffix == ".onnx":
        graph = onnx.load(str(path)).graph
        return {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name in names}
    params = dict(load_torchscript(path).named_parameters())
    return {n: params[n].detach().numpy() for n in names}


class MatMulNet(nn.Module):
    """x @ W + b (ONNX MatMul + Add, which onnx2pytorch fuses), LayerNorm, then a Linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(64, 32) * 0.1)
        self.b1 = nn.Parameter(torch.zeros(32))
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(torch.relu(x.flatten(1) @ self.w1 + self.b1)))
