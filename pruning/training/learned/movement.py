"""Movement pruning (Sanh et al. 2020), the hard variant: scores S accumulate -w·∂L/∂w over
fine-tuning (a weight moving away from zero gains score, one moving towards it loses it), and
each step the model computes with the weights of the top (1 - s_t) scores, s_t the cubic
schedule of Zhu & Gupta (``schedule`` gradual gives its shape; otherwise exponent 3 over the
first 75% of the steps). The mask is a straight-through estimator: every score gets its
gradient, so a dropped weight comes back if its score rises. With ``scope: layerwise`` each
layer keeps its own top fraction; ``global`` compares scores across layers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from pruning.training.learned.base import LEARNED, Learned, LearnedMethod, Setup
from pruning.training.schedules import gradual_target


@LEARNED.register
class MovementMethod(LearnedMethod):
    name: ClassVar[str] = "movement"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.scores = {n: torch.zeros_like(t) for n, t in self.theta.items()}
        self.masks = {n: torch.ones_like(t, dtype=torch.bool) for n, t in self.theta.items()}
        self.fraction, self.exponent, self.initial = setup.ramp
        self.ramp_steps = max(1, math.floor(self.fraction * setup.total_steps))

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def effective(self, training: bool) -> dict[str, torch.Tensor]:
        return {n: t * self.masks[n] for n, t in self.theta.items()}

    def after_backward(self, grads: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, g in grads.items():
                self.scores[n] -= g.float() * self.theta[n]

    def sparsity_at(self, step: int) -> float:
        final = 1.0 - self.setup.target_density
        return gradual_target(step, self.ramp_steps, final, self.initial, self.exponent)

    def after_step(self, step: int) -> None:
        self.masks = top_fraction(self.scores, 1.0 - self.sparsity_at(step + 1), self.setup.scope)

    def kept(self) -> dict[str, torch.Tensor]:
        return dict(self.masks)

    def state(self) -> dict[str, float]:
        return {"scheduled_density": 1.0 - self.sparsity_at(0)}

    def learned(self) -> dict[str, Learned]:
        with torch.no_grad():
            values = self.effective(training=False)
            return {
                n: Learned(values[n], self.theta[n].detach(), self.scores[n].clone())
                for n in self.theta
            }

    def notes(self) -> dict[str, Any]:
        return {
            "score": "accumulated -w * dL/dw",
            "ramp": {
                "exponent": self.exponent,
                "initial_sparsity": self.initial,
                "pruning_fraction": self.fraction,
                "steps": self.ramp_steps,
            },
        }


def top_fraction(
    scores: Mapping[str, torch.Tensor], density: float, scope: str
) -> dict[str, torch.Tensor]:
    """Masks of the highest-scoring ``density`` of the weights (ties kept by position)."""
    if scope == "layerwise":
        return {n: _top(s.reshape(-1), density).reshape(s.shape) for n, s in scores.items()}
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = _top(flat, density)
    out, start = {}, 0
    for n, s in scores.items():
        out[n] = keep[start : start + s.numel()].reshape(s.shape)
        start += s.numel()
    return out


def _top(flat: torch.Tensor, density: float) -> torch.Tensor:
    k = round(density * flat.numel())
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        keep[torch.topk(flat, k, sorted=False).indices] = True
    return keep
