"""Soft threshold reparameterisation, STR (Kusupati et al. 2020), at a controlled density.

Each layer l computes with sign(w)·relu(|w| - g(s_l)), g(s) = sigmoid(s)·m_l where m_l is the
layer's largest |w| at the start (so one initial s means the same relative threshold in every
layer). The thresholds are trained with the weights; layers whose weights matter keep low
thresholds, so the allocation across layers is learned, not set. The paper pushes s up with
weight decay at a hand-picked rate; here the push is a Lagrange multiplier lambda on -sum_l
(n_l/N) s_l, raised by dual ascent while the density (weights above their threshold) is above
the target (Gallego-Posada et al. 2022), so the user gives the sparsity, not the decay."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from pruning.training.learned.base import LEARNED, Learned, LearnedMethod, Setup
from pruning.training.learned.dual import Multiplier


@LEARNED.register
class SoftThresholdMethod(LearnedMethod):
    name: ClassVar[str] = "str"
    DEFAULT_LR: ClassVar[float] = 0.02
    DEFAULT_DUAL_LR: ClassVar[float] = 5.0

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        init = float(setup.options["init_s"])
        self.s = {n: torch.nn.Parameter(torch.tensor(init)) for n in self.theta}
        self.scale = {n: float(t.detach().abs().max()) or 1.0 for n, t in self.theta.items()}
        self.share = {n: t.numel() / max(self.total, 1) for n, t in self.theta.items()}
        self.multiplier = Multiplier(setup.target_density, self.dual_lr)

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.s.values())

    def threshold(self, name: str) -> torch.Tensor:
        return torch.sigmoid(self.s[name]) * self.scale[name]

    def effective(self, training: bool) -> dict[str, torch.Tensor]:
        return {
            n: torch.sign(t) * torch.relu(t.abs() - self.threshold(n))
            for n, t in self.theta.items()
        }

    def penalty(self) -> torch.Tensor:
        pushed = sum(self.share[n] * s for n, s in self.s.items())
        return -self.multiplier.value * torch.as_tensor(pushed)

    def after_step(self, step: int) -> None:
        self.multiplier.ascend(self.density())

    def kept(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {n: t.abs() > self.threshold(n) for n, t in self.theta.items()}

    def restarted(self) -> bool:
        return self.multiplier.restarted

    def state(self) -> dict[str, float]:
        return {"multiplier": self.multiplier.value}

    def learned(self) -> dict[str, Learned]:
        with torch.no_grad():
            values = self.effective(training=False)
            return {
                n: Learned(values[n], self.theta[n].detach(), t.abs() - self.threshold(n))
                for n, t in self.theta.items()
            }

    def notes(self) -> dict[str, Any]:
        with torch.no_grad():
            thresholds = {n: round(float(self.threshold(n)), 6) for n in self.theta}
        return {
            "thresholds": thresholds,
            "score": "|w| - g(s) of the weight's layer",
            "multiplier": self.multiplier.value,
            "dual_lr": self.multiplier.rate,
        }
