"""A BERT-shaped encoder small enough for seconds, with a pooler its forward never calls (as
in checkpoints fine-tuned for token classification), exported to TorchScript and ONNX."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

HIDDEN = 16
SEQUENCE = 6


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.query(x) @ self.key(x).transpose(-1, -2) / HIDDEN**0.5
        return torch.softmax(scores, dim=-1) @ self.value(x)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self = SelfAttention()  # HF's name: the path reads attention.self.query
        self.output = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.output(self.self(x))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = Attention()
        self.intermediate = nn.Linear(HIDDEN, 2 * HIDDEN)
        self.output = nn.Linear(2 * HIDDEN, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention(x)
        return x + self.output(torch.relu(self.intermediate(x)))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.ModuleList([Layer(), Layer()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x)
        return x


class Pooler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)


class TinyBert(nn.Module):
    """``pooler.dense.weight`` is in the state dict; ``forward`` never reads it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = Encoder()
        self.pooler = Pooler()
        self.classifier = nn.Linear(HIDDEN, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x)[:, 0])


def example(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, SEQUENCE, HIDDEN)


def traced_bert(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(TinyBert().eval(), example()), str(path))
    return path


def onnx_bert(
    path: Path, unused_initializer: str | None = "pooler.dense.weight", sequence_axis: bool = False
) -> Path:
    """The exporter drops the pooler; ``unused_initializer`` puts a weight back that no node
    reads, as other exporters and graph editors leave them. ``sequence_axis``: the sequence
    length is a symbolic axis, as in exported language models."""
    x_axes = {0: "batch", 1: "sequence"} if sequence_axis else {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TinyBert().eval(),
            (example(),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": x_axes, "logits": {0: "batch"}},
        )
    if unused_initializer is not None:
        proto = onnx.load(str(path))
        values = np.random.default_rng(0).standard_normal((HIDDEN, HIDDEN)).astype(np.float32)
        proto.graph.initializer.append(numpy_helper.from_array(values, unused_initializer))
        onnx.save(proto, str(path))
    return path


def calibration_npz(path: Path, samples: int = 24) -> Path:
    x = np.random.default_rng(1).standard_normal((samples, SEQUENCE, HIDDEN)).astype(np.float32)
    np.savez(path, x=x)
    return path
