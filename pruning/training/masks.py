"""Masks held fixed between pruning events: read from the zeros the last event wrote, then
enforced after every optimizer step, so pruned weights are exactly 0.0 throughout training.
An n:m pattern stays exact because no zero can come back to life."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class FixedMasks:
    def __init__(self, weights: Iterable[torch.Tensor]) -> None:
        self.weights = list(weights)
        with torch.no_grad():
            self.pruned = [w.detach() == 0 for w in self.weights]
        self.total = sum(int(w.numel()) for w in self.weights)
        self.zeros = sum(int(m.sum()) for m in self.pruned)

    @property
    def sparsity(self) -> float:
        return self.zeros / self.total if self.total else 0.0

    def zero_gradients(self) -> None:
        """No gradient reaches a pruned weight, so optimizer moments (Adam) stay unmoved by
        it and weight decay has nothing to act on."""
        for w, pruned in zip(self.weights, self.pruned, strict=True):
            if w.grad is not None:
                w.grad.masked_fill_(pruned, 0.0)

    def apply(self) -> None:
        """Zero the pruned weights again (momentum from before an event could move them)."""
        with torch.no_grad():
            for w, pruned in zip(self.weights, self.pruned, strict=True):
                w.masked_fill_(pruned, 0.0)
