"""Regrowth between pruning events: a weight pruned at an earlier event keeps a shadow value
(its value when it was pruned); at the next event, shadows larger in magnitude than the
smallest surviving weight of their layer are reconnected with that value, and the event then
prunes to its target from the union, so the target still holds exactly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pruning.tensors import WeightTensor


class Shadows:
    def __init__(self) -> None:
        self.values: dict[str, np.ndarray] = {}  # 0.0 where never pruned (or pruned at 0.0)
        self.regrown = 0  # reconnected weights that survived their event
        self._reconnected: dict[str, np.ndarray] = {}

    def before_event(self, tensors: Sequence[WeightTensor]) -> dict[str, np.ndarray]:
        """Reconnect eligible shadows in place; return the weights as they were, so
        ``after_event`` can record the values of those this event prunes."""
        reconnected: dict[str, np.ndarray] = {}
        for t in tensors:
            shadow = self.values.get(t.name)
            if shadow is not None:
                alive = t.values != 0
                smallest = np.abs(t.values[alive]).min() if alive.any() else np.inf
                back = (~alive) & (np.abs(shadow) > smallest)
                t.values[back] = shadow[back]
                reconnected[t.name] = back
        self._reconnected = reconnected
        return {t.name: t.values.copy() for t in tensors}

    def after_event(self, tensors: Sequence[WeightTensor], before: dict[str, np.ndarray]) -> None:
        for t in tensors:
            pruned_now = (t.values == 0) & (before[t.name] != 0)
            shadow = self.values.setdefault(t.name, np.zeros_like(t.values))
            shadow[pruned_now] = before[t.name][pruned_now]
            back = self._reconnected.get(t.name)
            if back is not None:
                self.regrown += int(np.count_nonzero(back & (t.values != 0)))
