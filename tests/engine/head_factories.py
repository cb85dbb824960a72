"""Small multi-head transformer encoders in three attention-graph styles, exported to ONNX with
the TorchScript-based exporter (``dynamo=False``) or the dynamo exporter (``dynamo=True``,
through ``onnxscript``), whose graphs differ: constant ``[-1, s, H, D]`` split shapes, and for
scaled_dot_product_attention k^T made as Reshape to ``[-1, s, D]`` / Transpose / Reshape back
with shapes sliced from ``Shape(k)``, and a constant scale on q and k.

- ``"hf"``: BERT's construction: ``x.size()[:-1] + (heads, head_dim)`` views (the exporter
  computes the shape with Shape/Gather/Unsqueeze/Concat), ``permute(0, 2, 1, 3)``, scores
  ``q @ k^T / sqrt(d)``, the merge view computed from ``context.size()[:-2]``.
- ``"fixed"``: ``reshape(b, s, heads, head_dim)`` with ``k`` permuted straight to
  ``[b, heads, head_dim, s]``, ``q`` scaled before the scores, a merge ``reshape(b, s, -1)``.
- ``"packed"``: one fused q|k|v Linear and ``chunk(3)``: three Slices with bounds computed
  from ``Shape`` (TorchScript-based exporter) or one ``Split`` (dynamo).
- ``"sdpa"``: ``F.scaled_dot_product_attention``, which the exporter writes with q and k^T
  each scaled by ``sqrt(1 / sqrt(q.shape[-1]))`` computed at run time from Shape/Slice.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


class HeadAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, style: str) -> None:
        super().__init__()
        self.heads, self.head_dim, self.style = heads, hidden // heads, style
        if style == "packed":
            self.qkv = nn.Linear(hidden, 3 * hidden)
        else:
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        styles = {"hf": self._hf, "fixed": self._fixed, "sdpa": self._sdpa, "packed": self._packed}
        merged = styles[self.style](x)
        out: torch.Tensor = self.output(merged)
        return out

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        shape = (*x.size()[:-1], self.heads, self.head_dim)
        return x.view(shape).permute(0, 2, 1, 3)

    def _hf(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
        return context.view((*context.size()[:-2], self.heads * self.head_dim))

    def _sdpa(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        context = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        merged: torch.Tensor = context.reshape(x.shape[0], x.shape[1], -1)
        return merged

    def _packed(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[0], x.shape[1]
        q, k, v = (
            t.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)
            for t in self.qkv(x).chunk(3, dim=-1)
        )
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2)
        merged: torch.Tensor = context.reshape(b, s, -1)
        return merged

    def _fixed(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[0], x.shape[1]
        q = self.query(x).reshape(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.key(x).reshape(b, s, self.heads, self.head_dim).permute(0, 2, 3, 1)
        v = self.value(x).reshape(b, s, self.heads, self.head_dim).transpose(1, 2)
        scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k
        context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2)
        merged: torch.Tensor = context.reshape(b, s, -1)
        return merged


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, style: str) -> None:
        super().__init__()
        self.attention = HeadAttention(hidden, heads, style)
        self.norm1 = nn.LayerNorm(hidden)
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attention(x))
        out: torch.Tensor = self.norm2(
            x + self.output(torch.nn.functional.gelu(self.intermediate(x)))
        )
        return out


class Encoder(nn.Module):
    """Tokens (int64 ids) -> the mean-pooled last hidden state (a sentence embedding)."""

    def __init__(
        self,
        style: str = "hf",
        vocab: int = 17,
        hidden: int = 32,
        heads: int = 4,
        ffn: int = 64,
        layers: int = 2,
        sequence: int = 8,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.position = nn.Parameter(torch.randn(1, sequence, hidden) * 0.1)
        self.blocks = nn.ModuleList(Block(hidden, heads, ffn, style) for _ in range(layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position
        for block in self.blocks:
            x = block(x)
        pooled: torch.Tensor = x.mean(dim=1)
        return pooled


def tokens(batch: int, sequence: int = 8, vocab: int = 17, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, (batch, sequence)).astype(np.int64)


def export_encoder(model: nn.Module, path: Path, sequence: int = 8) -> Path:
    example = torch.from_numpy(tokens(2, sequence))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            dynamo=False,
            input_names=["tokens"],
            output_names=["embedding"],
            dynamic_axes={"tokens": {0: "batch"}, "embedding": {0: "batch"}},
        )
    return path


def export_encoder_dynamo(model: nn.Module, path: Path, sequence: int = 8) -> Path:
    example = torch.from_numpy(tokens(2, sequence))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.eval(),
            (example,),
            dynamo=True,
            input_names=["tokens"],
            # not "embedding": the dynamo exporter renames the output without checking that
            # nn.Embedding's value already has that name, and writes a graph that is not SSA
            output_names=["sentence"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    assert program is not None
    program.save(str(path))
    return path


def onnx_encoder(path: Path, style: str = "hf", seed: int = 0, dynamo: bool = False) -> Path:
    torch.manual_seed(seed)
    export = export_encoder_dynamo if dynamo else export_encoder
    return export(Encoder(style), path)
