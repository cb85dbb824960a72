"""Small real nets whose channels are tied in the ways structured pruning must follow:
residual additions, concatenation, depthwise convolution, conv -> flatten -> Linear."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

IMAGE = (3, 8, 8)


class ResidualConcatNet(nn.Module):
    """stem(conv+BN) -> residual block -> concat with a depthwise conv -> 1x1 conv -> FC."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.BatchNorm2d(16),
        )
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.head = nn.Sequential(
            nn.Conv2d(32, 24, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(24 * 8 * 8, 32),
            nn.ReLU(),
            nn.Linear(32, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = torch.relu(y + self.block(y))
        return self.head(torch.cat([y, self.depthwise(y)], dim=1))


class GroupedConvNet(nn.Module):
    """A conv feeding a grouped (not depthwise) conv: its channels must stay."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.grouped(torch.relu(self.conv(x))))
        return self.fc(y.mean(dim=(2, 3)))


class InputResidualNet(nn.Module):
    """x + conv(x): the conv's channels are added to the model input's, which cannot shrink."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x + self.conv(x), 1))


def make_net(kind: type[nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = kind()
    with torch.no_grad():  # trained-looking BatchNorm statistics
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.eval()


def silence_channels(net: nn.Module, count: int) -> nn.Module:
    """Make the first ``count`` output channels of every layer but the classifier exactly zero
    (weights, bias, BN shift): they have the lowest norm, and removing them changes nothing."""
    layers = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        for module in layers[:-1]:
            module.weight[:count] = 0
            if module.bias is not None:
                module.bias[:count] = 0
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.bias[:count] = 0
                module.running_mean[:count] = 0
    return net


def export(net: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.randn(1, *IMAGE),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=False,  # keep BatchNorm as its own node
        )
    return path


def images(batch: int, seed: int = 0, channels: int = 3, size: int = 8) -> np.ndarray:
    shape = (batch, channels, size, size)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def matmul_mlp(path: Path, seed: int = 0) -> Path:
    """x @ W1 + b1 -> Relu -> x @ W2 + b2, written as MatMul + Add (no Gemm)."""
    rng = np.random.default_rng(seed)
    w1, b1 = rng.standard_normal((12, 20)), rng.standard_normal(20)
    w2, b2 = rng.standard_normal((20, 5)), rng.standard_normal(5)
    inits = [
        onnx.numpy_helper.from_array(a.astype(np.float32), n)
        for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))
    ]
    nodes = [
        onnx.helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        onnx.helper.make_node("Add", ["h0", "b1"], ["h1"]),
        onnx.helper.make_node("Relu", ["h1"], ["h2"]),
        onnx.helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        onnx.helper.make_node("Add", ["h3", "b2"], ["y"]),
    ]
    graph = onnx.helper.make_graph(
        nodes,
        "mlp",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 12])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 5])],
        inits,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
