"""Small real models, pruned here with numpy (not with the engine under test), and exported
the way users export theirs."""

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import numpy_helper

MLP_INPUT = (1, 16)
CONVNET_INPUT = (1, 3, 12, 12)


def make_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 4),
    ).eval()


def make_convnet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 10),
    ).eval()


MODELS = {"mlp": (make_mlp, MLP_INPUT), "convnet": (make_convnet, CONVNET_INPUT)}


def prune_smallest(model: torch.nn.Module, fraction: float = 0.8) -> torch.nn.Module:
    """Zero exactly the `fraction` smallest-magnitude entries of every weight (ndim >= 2)."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim < 2:
                continue
            flat = parameter.view(-1)
            smallest = torch.argsort(flat.abs())[: int(fraction * flat.numel())]
            flat[smallest] = 0.0
    return model


def weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Weight matrices and kernels by their torch names (what ONNX and TorchScript keep)."""
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters() if p.ndim >= 2}


def export_onnx(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript-based exporter keeps torch's parameter names.
        torch.onnx.export(
            model,
            (torch.randn(*input_shape),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
        )
    return path


def export_torchscript(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(model, torch.randn(*input_shape)).save(str(path))  # type: ignore[no-untyped-call]
    return path


def onnx_initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output: np.ndarray = session.run(None, {"x": x})[0]
    return output


def run_torchscript(path: Path, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module: Any = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    with torch.no_grad():
        output: np.ndarray = module(torch.from_numpy(x)).numpy()
    return output


def inputs(input_shape: tuple[int, ...], batch: int = 3, seed: int = 1) -> np.ndarray:
    shape = (batch, *input_shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def sparse_matrix(shape: tuple[int, ...], sparsity: float, seed: int = 0) -> np.ndarray:
    """Normal values with exactly round(sparsity * size) zeros at random places."""
    rng = np.random.default_rng(seed)
    array = rng.standard_normal(shape).astype(np.float32)
    zeros = rng.permutation(array.size)[: round(sparsity * array.size)]
    array.reshape(-1)[zeros] = 0.0
    return array
