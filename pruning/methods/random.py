"""Random pruning: every weight gets an independent uniform score, a baseline that any
informed method must beat (e.g. Blalock et al. 2020, "What is the State of Neural Network
Pruning?"). Scores are a counter-based hash of (seed, tensor name, position), so they are
reproducible for a seed and can be recomputed slice by slice without being stored."""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

import numpy as np

from pruning.methods.base import SCORERS, IntArray, Scorer
from pruning.tensors import FloatArray, WeightTensor

_MASK64 = (1 << 64) - 1


@SCORERS.register
class RandomScorer(Scorer):
    name: ClassVar[str] = "random"

    def __init__(self, *, seed: int) -> None:
        self.seed = seed

    def score_dtype(self, tensor: WeightTensor) -> np.dtype[Any]:
        return np.dtype(np.float32)

    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        positions = np.arange(start, start + out.size, dtype=np.uint64)
        out[...] = _uniform(positions + np.uint64(self._key(tensor)))
        return out

    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        return _uniform(positions.astype(np.uint64) + np.uint64(self._key(tensor)))

    def _key(self, tensor: WeightTensor) -> int:
        mixed = _splitmix_int((self.seed << 32) ^ zlib.crc32(tensor.name.encode()))
        return mixed & ((1 << 63) - 1)


def _uniform(counters: np.ndarray[Any, np.dtype[np.uint64]]) -> FloatArray:
    """SplitMix64 (Steele et al. 2014) of each counter, top 24 bits as a float32 in [0, 1)."""
    z = counters + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)


def _splitmix_int(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)
