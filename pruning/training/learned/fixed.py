"""The fine-tuning after the projection: the projected mask held fixed (not a spec method)."""

from __future__ import annotations

from typing import ClassVar

import torch

from pruning.training.learned.base import Learned, LearnedMethod, Setup


class FixedMask(LearnedMethod):
    name: ClassVar[str] = "fixed"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.masks = {n: t != 0 for n, t in self.theta.items()}

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def effective(self, training: bool) -> dict[str, torch.Tensor]:
        return {n: t * self.masks[n] for n, t in self.theta.items()}

    def after_step(self, step: int) -> None:
        pass

    def kept(self) -> dict[str, torch.Tensor]:
        return dict(self.masks)

    def learned(self) -> dict[str, Learned]:
        with torch.no_grad():
            values = self.effective(training=False)
            return {n: Learned(values[n], values[n], self.masks[n].float()) for n in self.theta}
