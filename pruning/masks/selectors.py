"""Mask selectors: turn scores into cuts, either with one threshold for a pool of tensors
(global) or one per tensor (layerwise). Each cut prunes exactly round(s * n) elements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from pruning.masks.cut import Cut, apply_cut
from pruning.masks.kth import KSmallest
from pruning.methods.base import Scorer
from pruning.tensors import WeightTensor


class MaskSelector(ABC):
    @abstractmethod
    def select(self, tensors: Sequence[WeightTensor], scorer: Scorer, sparsity: float) -> list[Cut]:
        """One cut per tensor, in order."""


class GlobalTopK(MaskSelector):
    """Keep the top (1 - s) scores of the pool as a whole: one threshold across tensors, so
    layers of small weights end up sparser (global magnitude pruning, as compared with
    layerwise in Blalock et al. 2020, "What is the State of Neural Network Pruning?")."""

    def select(self, tensors: Sequence[WeightTensor], scorer: Scorer, sparsity: float) -> list[Cut]:
        total = sum(t.numel for t in tensors)
        cuts = iter(KSmallest(tensors, scorer).cuts(round(sparsity * total)))
        return [next(cuts) if t.numel else Cut.none() for t in tensors]


class LayerwiseTopK(MaskSelector):
    """Keep the top (1 - s) scores of every tensor separately: uniform sparsity (each layer
    with its own threshold, as in Han et al. 2015)."""

    def select(self, tensors: Sequence[WeightTensor], scorer: Scorer, sparsity: float) -> list[Cut]:
        return [GlobalTopK().select([t], scorer, sparsity)[0] for t in tensors]


SELECTORS: dict[str, MaskSelector] = {"global": GlobalTopK(), "layerwise": LayerwiseTopK()}


def prune_in_place(
    tensors: Sequence[WeightTensor],
    scorer: Scorer,
    sparsity: float,
    scope: str,
    overrides: Mapping[str, float] | None = None,
) -> dict[str, Cut]:
    """Select every cut first (scores are read from unpruned weights), then write zeros.

    Tensors named in ``overrides`` are pruned layerwise to their own fraction and kept out
    of the global pool, so they neither take nor give budget.
    """
    cuts = select_cuts(tensors, scorer, sparsity, scope, overrides)
    for t in tensors:
        apply_cut(t, scorer, cuts[t.name])
    return cuts


def select_cuts(
    tensors: Sequence[WeightTensor],
    scorer: Scorer,
    sparsity: float,
    scope: str,
    overrides: Mapping[str, float] | None = None,
) -> dict[str, Cut]:
    """The cuts ``prune_in_place`` applies, by tensor name, without writing any zero."""
    own = overrides or {}
    pooled = [t for t in tensors if t.name not in own]
    cuts = dict(
        zip(
            [t.name for t in pooled], SELECTORS[scope].select(pooled, scorer, sparsity), strict=True
        )
    )
    layerwise = SELECTORS["layerwise"]
    for t in tensors:
        if t.name in own:
            cuts[t.name] = layerwise.select([t], scorer, own[t.name])[0]
    return cuts
