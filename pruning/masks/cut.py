"""A compact mask: "scores below a threshold, plus the first few that tie with it".

Masks are never materialised for a whole model: a ``Cut`` is two numbers per tensor, and
applying it streams over the tensor once. Ties are broken by flat position (row-major), so a
cut is deterministic for the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pruning.methods.base import Scorer
from pruning.tensors import FloatArray, WeightTensor

CHUNK = 1 << 17  # elements per slice: 512 KiB of float32 scores, resident in L2
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Cut:
    """Prune every element scoring below ``threshold`` and the first ``ties`` scoring equal."""

    threshold: np.floating[Any]
    ties: int
    pruned: int

    @staticmethod
    def none() -> Cut:
        return Cut(np.float32(-np.inf), 0, 0)


def apply_cut(tensor: WeightTensor, scorer: Scorer, cut: Cut) -> None:
    """Write the cut's zeros into ``tensor`` (ties first: their scores are read unpruned)."""
    if cut.ties:
        _zero_first_ties(tensor, scorer, cut.threshold, cut.ties)
    if cut.pruned > cut.ties:
        scorer.zero_below(tensor, cut.threshold)


def apply_cut_to_piece(
    tensor: WeightTensor, scorer: Scorer, cut: Cut, start: int, piece: FloatArray, ties: int
) -> int:
    """``apply_cut`` on ``tensor.flat[start : start + piece.size]``, whose values ``piece``
    holds (a copy being written out): pieces in order give the same zeros as the whole
    tensor. ``ties``: how many ties at the threshold are still to prune (``cut.ties`` for the
    first piece); returns the count left for the next."""
    if not ties and cut.pruned <= cut.ties:
        return 0
    # Not ``scorer.zero_below``: a piece is small and in cache, where numpy's few passes beat
    # the thread pool of a fused torch kernel (magnitude's hardshrink: 5 ms per 64k piece).
    alone = WeightTensor(tensor.name, tensor.op, piece, tensor.node, tensor.op_type)
    scores = np.empty(piece.size, scorer.score_dtype(alone))
    if scorer.position_free:
        scorer.score(alone, 0, scores)
    else:  # scores depend on where an element is (random): the whole tensor's, from start
        scorer.score(tensor, start, scores)
    if ties:
        hits = np.flatnonzero(scores == cut.threshold)[:ties]
        piece[hits] = 0
        ties -= hits.size
    if cut.pruned > cut.ties:
        np.multiply(piece, np.greater_equal(scores, cut.threshold), out=piece)
        np.add(piece, 0.0, out=piece)  # -0.0 left by negative weights becomes +0.0
    return ties


def dense_mask(tensor: WeightTensor, scorer: Scorer, cut: Cut) -> BoolArray:
    """The cut as a boolean array of the tensor's shape (True = pruned); for tests and tools."""
    scores = np.empty(tensor.numel, scorer.score_dtype(tensor))
    scorer.score(tensor, 0, scores)
    mask = scores < cut.threshold
    mask[np.flatnonzero(scores == cut.threshold)[: cut.ties]] = True
    return mask.reshape(tensor.values.shape)


def _zero_first_ties(
    tensor: WeightTensor, scorer: Scorer, threshold: np.floating[Any], count: int
) -> None:
    flat = tensor.flat
    scores = np.empty(min(CHUNK, flat.size), scorer.score_dtype(tensor))
    for start in range(0, flat.size, CHUNK):
        s = scorer.score(tensor, start, scores[: min(CHUNK, flat.size - start)])
        hits = np.flatnonzero(s == threshold)[:count]
        flat[start + hits] = 0
        count -= hits.size
        if count == 0:
            return
