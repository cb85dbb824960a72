"""A tiny BERT-shaped encoder with integer inputs (token ids and an attention mask), as ONNX
and TorchScript, and a calibration set of token sequences for it: what distillation after a
one-shot pass trains on."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

VOCAB, WIDTH, SEQUENCE, SAMPLES = 40, 16, 6, 32
INPUTS = [
    {"name": "input_ids", "dtype": "int64", "shape": ["batch", SEQUENCE]},
    {"name": "attention_mask", "dtype": "int64", "shape": ["batch", SEQUENCE]},
]


class TokenEncoder(nn.Module):
    """Embeddings, one post-norm attention block with a ReLU FFN, first-token pooling."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.words = nn.Embedding(VOCAB, WIDTH)
        self.query, self.key, self.value, self.output = (nn.Linear(WIDTH, WIDTH) for _ in range(4))
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.up, self.down = nn.Linear(WIDTH, 4 * WIDTH), nn.Linear(4 * WIDTH, WIDTH)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.words(input_ids)
        bias = (1.0 - attention_mask.unsqueeze(1).float()) * -10000.0
        scores = self.query(x) @ self.key(x).transpose(-1, -2) * 0.25 + bias  # 1 / sqrt(WIDTH)
        x = self.norm1(x + self.output(scores.softmax(-1) @ self.value(x)))
        x = self.norm2(x + self.down(torch.relu(self.up(x))))
        pooled: torch.Tensor = x[:, 0]
        return pooled


def tokens(samples: int = SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(samples, SEQUENCE)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[::3, -2:] = 0  # some padded sequences
    return ids, mask


def token_calibration(path: Path) -> Path:
    ids, mask = tokens()
    np.savez(path, input_ids=ids, attention_mask=mask)
    return path


def export_token_onnx(path: Path) -> Path:
    ids, mask = (torch.from_numpy(a[:2]) for a in tokens())
    axes = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenEncoder().eval(),
            (ids, mask),
            str(path),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": axes},
        )
    return path


def export_token_torchscript(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.script(TokenEncoder().eval())
        torch.jit.save(module, str(path), _extra_files={"shears/inputs.json": json.dumps(INPUTS)})
    return path
