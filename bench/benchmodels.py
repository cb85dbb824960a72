"""What the bench scripts do to the models they train: export them as users would."""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

VOCAB = 30522


@dataclass(frozen=True)
class EncoderShape:
    width: int
    layers: int
    heads: int
    ffn: int


# A 6-layer, 384-wide sentence encoder (22.7M parameters, 36 linear layers), and BERT-base
# (108.9M parameters, 436 MB as ONNX).
SENTENCE = EncoderShape(width=384, layers=6, heads=12, ffn=1536)
BASE = EncoderShape(width=768, layers=12, heads=12, ffn=3072)


def export_onnx(net: nn.Module, example: np.ndarray, path: Path, output: str) -> Path:
    """ONNX with input `x`, one output named `output`, and a symbolic batch dimension."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.from_numpy(example[:1]),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=[output],
            dynamic_axes={"x": {0: "batch"}, output: {0: "batch"}},
        )
    return path


class Block(nn.Module):
    """One BERT layer: q/k/v/o projections over the shape's heads, a GELU FFN, post-norm."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        width, self.heads = shape.width, shape.heads
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.output = nn.Linear(width, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.up, self.down = nn.Linear(width, shape.ffn), nn.Linear(shape.ffn, width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        size = width // self.heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq, self.heads, size).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / size**0.5 + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, width)
        x = self.norm1(x + self.output(context))
        out: torch.Tensor = self.norm2(x + self.down(nn.functional.gelu(self.up(x))))
        return out


class Encoder(nn.Module):
    """A BERT-like encoder of the given shape: token and position embeddings, the layers,
    the first token's state out."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.words = nn.Embedding(VOCAB, shape.width)
        self.positions = nn.Embedding(512, shape.width)
        self.norm = nn.LayerNorm(shape.width)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.norm(self.words(input_ids) + self.positions(positions))
        mask = attention_mask.unsqueeze(1).unsqueeze(2).float()
        bias = (1.0 - mask) * -10000.0
        for block in self.blocks:
            x = block(x, bias)
        # BERT's pooling: the first token's state (finite even when every mask is zero).
        pooled: torch.Tensor = x[:, 0]
        return pooled


def bert_like_encoder(shape: EncoderShape = SENTENCE) -> Encoder:
    """An Encoder with BERT's initialisation (random weights: the shapes set the cost)."""
    torch.manual_seed(0)
    net = Encoder(shape).eval()
    for module in net.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
    return net


def export_encoder(
    net: nn.Module, ids: np.ndarray, mask: np.ndarray, path: Path, dynamic_seq: bool = True
) -> Path:
    """ONNX with integer `input_ids` and `attention_mask`, a symbolic batch and, unless
    ``dynamic_seq`` is false, a symbolic sequence length (then the example's is fixed)."""
    axes = {0: "batch", 1: "seq"} if dynamic_seq else {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            str(path),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
        )
    return path
