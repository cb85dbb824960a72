"""Masks: scores in, zeros out. Selection is exact and streaming (see ``kth``)."""

from pruning.masks.cut import Cut, apply_cut, dense_mask
from pruning.masks.kth import KSmallest
from pruning.masks.selectors import (
    SELECTORS,
    GlobalTopK,
    LayerwiseTopK,
    MaskSelector,
    prune_in_place,
    select_cuts,
)

__all__ = [
    "SELECTORS",
    "Cut",
    "GlobalTopK",
    "KSmallest",
    "LayerwiseTopK",
    "MaskSelector",
    "apply_cut",
    "dense_mask",
    "prune_in_place",
    "select_cuts",
]
