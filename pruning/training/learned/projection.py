"""The end of every learned method: project what it learned onto exactly the requested
sparsity, ranking by the method's own score with the spec's scope and per-layer overrides
(the same exact selection the one-shot methods use, ``pruning.masks``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pruning.masks import prune_in_place
from pruning.methods.base import IntArray, Scorer
from pruning.tensors import FloatArray, WeightTensor
from pruning.training.learned.base import Learned

LOWEST = float(np.finfo(np.float32).min)


class LearnedScores(Scorer):
    """Scores fixed at the end of training, in the adapter's layout."""

    name = "learned"

    def __init__(self, scores: Mapping[str, np.ndarray]) -> None:
        self.scores = scores

    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        out[...] = self.scores[tensor.name].reshape(-1)[start : start + out.size]
        return out

    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        flat = self.scores[tensor.name].reshape(-1)[positions]
        return flat.astype(self.score_dtype(tensor), copy=False)


@dataclass(frozen=True)
class Start:
    """Before projection: the values written (learned, or latent where the method dropped
    the weight) and what the method kept, both in the adapter's layout."""

    values: dict[str, torch.Tensor]  # torch layout, to write into the trainable view
    scores: dict[str, np.ndarray]  # adapter layout
    kept: dict[str, np.ndarray]  # adapter layout


def prepare(learned: Mapping[str, Learned], transposed: Mapping[str, bool]) -> Start:
    """A weight the projection keeps although the method dropped it gets its latent value
    back; weights with no value at all rank below every other, so the zeros come out exact."""
    values, scores, kept = {}, {}, {}
    for name, part in learned.items():
        alive = part.values != 0
        value = torch.where(alive, part.values, part.latent)
        score = torch.where(value != 0, part.scores.float(), torch.tensor(LOWEST))
        values[name] = value
        flip = transposed[name]
        scores[name] = np.ascontiguousarray((score.T if flip else score).numpy(), np.float32)
        kept[name] = np.ascontiguousarray((alive.T if flip else alive).numpy())
    return Start(values, scores, kept)


def project(
    tensors: Sequence[WeightTensor],
    start: Start,
    sparsity: float,
    scope: str,
    overrides: Mapping[str, float],
) -> dict[str, Any]:
    """Zero the adapter's tensors to exactly ``sparsity``; return the report's per-layer
    learned and final sparsity and the count of weights the projection moved."""
    prune_in_place(tensors, LearnedScores(start.scores), sparsity, scope, overrides)
    layers, revived, dropped = {}, 0, 0
    for t in tensors:
        kept = start.kept[t.name].reshape(-1)
        final = t.flat != 0
        revived += int((final & ~kept).sum())
        dropped += int((kept & ~final).sum())
        layers[t.name] = {
            "weights": int(t.numel),
            "learned_sparsity": round(1.0 - float(kept.mean()), 6),
            "sparsity": round(1.0 - float(final.mean()), 6),
        }
    return {"layers": layers, "moved": {"revived": revived, "dropped": dropped}}
