"""L0 regularisation with hard-concrete gates (Louizos et al. 2018) at a controlled density
(Gallego-Posada et al. 2022).

Each weight w has a gate z = min(1, max(0, s (zeta - gamma) + gamma)), s = sigmoid((log u -
log(1-u) + log_alpha)/beta) for u ~ U(0, 1): a stretched, clipped concrete variable that is
exactly 0 or 1 with non-zero probability, so the expected number of non-zero gates, sum
sigmoid(log_alpha - beta log(-gamma/zeta)), is differentiable. The loss is the task loss plus
lambda times the expected density, lambda a Lagrange multiplier raised by dual ascent while the
expected density is above the target. At the end the gates are deterministic, z = min(1, max(0,
sigmoid(log_alpha)(zeta - gamma) + gamma)), and the weights w·z."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from pruning.training.learned.base import LEARNED, Learned, LearnedMethod, Setup
from pruning.training.learned.dual import Multiplier

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1
SHIFT = BETA * math.log(-GAMMA / ZETA)  # P(z != 0) = sigmoid(log_alpha - SHIFT)


@LEARNED.register
class L0Method(LearnedMethod):
    name: ClassVar[str] = "l0"
    DEFAULT_LR: ClassVar[float] = 0.1
    DEFAULT_DUAL_LR: ClassVar[float] = 2.0

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        init = float(setup.options["init_log_alpha"])
        self.log_alpha = {
            n: torch.nn.Parameter(torch.full_like(t, init)) for n, t in self.theta.items()
        }
        self.multiplier = Multiplier(setup.target_density, self.dual_lr)
        self._expected = 1.0

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.log_alpha.values())

    def effective(self, training: bool) -> dict[str, torch.Tensor]:
        return {n: self.theta[n] * self._gate(a, training) for n, a in self.log_alpha.items()}

    @staticmethod
    def _gate(log_alpha: torch.Tensor, training: bool) -> torch.Tensor:
        if training:
            u = torch.rand_like(log_alpha).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / BETA)
        else:
            s = torch.sigmoid(log_alpha)
        return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)

    def expected_density(self) -> torch.Tensor:
        opened = sum(torch.sigmoid(a - SHIFT).sum() for a in self.log_alpha.values())
        return torch.as_tensor(opened) / max(self.total, 1)

    def penalty(self) -> torch.Tensor:
        expected = self.expected_density()
        self._expected = float(expected.detach())
        return self.multiplier.value * expected

    def after_step(self, step: int) -> None:
        self.multiplier.ascend(self._expected)

    def kept(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {n: self._gate(a, False) > 0 for n, a in self.log_alpha.items()}

    def restarted(self) -> bool:
        return self.multiplier.restarted

    def state(self) -> dict[str, float]:
        return {"expected_density": round(self._expected, 6), "multiplier": self.multiplier.value}

    def learned(self) -> dict[str, Learned]:
        with torch.no_grad():
            values = self.effective(training=False)
            return {
                n: Learned(values[n], self.theta[n].detach(), self.log_alpha[n].detach())
                for n in self.theta
            }

    def notes(self) -> dict[str, Any]:
        return {
            "gates": "hard concrete per weight (beta 2/3, gamma -0.1, zeta 1.1)",
            "score": "log alpha of the gate",
            "multiplier": self.multiplier.value,
            "dual_lr": self.multiplier.rate,
        }
