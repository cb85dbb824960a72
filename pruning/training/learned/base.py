"""The one interface every learned-sparsity method implements.

The trainable view's weight tensors stay what the model computes with; a method keeps its
own latent weights (and gates, thresholds or scores) and, before every step, computes the
*effective* weights from them. The step's gradient with respect to the effective weights is
then chained back into the method's parameters (``run.py``), so the same method works on any
graph the trainable path can run, ONNX or TorchScript, without touching its modules."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from pruning.method_registry import MethodRegistry


@dataclass(frozen=True)
class Setup:
    """What a method is built with: the weights it learns (torch layout of the trainable
    view), the overall density the job ends at, and the training's length."""

    weights: Mapping[str, torch.Tensor]
    target_density: float
    total_steps: int
    scope: str  # "global" or "layerwise": how scores are compared (movement's masks)
    options: Mapping[str, Any]
    ramp: tuple[float, float, float] = (0.75, 3.0, 0.0)  # movement: fraction, exponent, s_i


@dataclass(frozen=True)
class Learned:
    """One tensor at the end of training: the values the method learned (zeros where it
    dropped weights), the latent values a weight kept only by the projection gets back, and
    the score the projection ranks by (higher is kept)."""

    values: torch.Tensor
    latent: torch.Tensor
    scores: torch.Tensor


class LearnedMethod(ABC):
    name: ClassVar[str]

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.theta = {
            n: torch.nn.Parameter(w.detach().float().clone()) for n, w in setup.weights.items()
        }
        self.total = sum(int(w.numel()) for w in setup.weights.values())

    @abstractmethod
    def extra_parameters(self) -> list[torch.nn.Parameter]:
        """The method's own parameters (gates, log variances, thresholds), trained at
        ``extra_lr``."""

    DEFAULT_LR: ClassVar[float] = 0.05
    DEFAULT_DUAL_LR: ClassVar[float] = 1.0

    @property
    def pace(self) -> float:
        """Short jobs (tests, a few epochs) have few steps to move gates and thresholds from
        dense to the target: the default rates grow so that the trip takes about the same
        share of training, measured on the digits CNN (100 steps or fewer: x1)."""
        return max(1.0, 100.0 / max(self.setup.total_steps, 1))

    @property
    def extra_lr(self) -> float:
        return self._rate("lr", self.DEFAULT_LR)

    @property
    def dual_lr(self) -> float:
        return self._rate("dual_lr", self.DEFAULT_DUAL_LR)

    def _rate(self, option: str, default: float) -> float:
        """A rate the spec gives, or (left out or null) the method's default at its pace."""
        given = self.setup.options.get(option)
        return default * self.pace if given is None else float(given)

    @abstractmethod
    def effective(self, training: bool) -> dict[str, torch.Tensor]:
        """The weights the model computes with, differentiable in the method's parameters;
        ``training`` samples the method's noise, if any; otherwise deterministic."""

    def attach(self, module: Any) -> Callable[[], None]:
        """Hooks the method needs inside the trainable module's forward (sparse VD's local
        reparameterisation), for the learning phase; returns what removes them."""
        return lambda: None

    def penalty(self) -> torch.Tensor | None:
        """The sparsity term added to the loss (None: the method has none)."""
        return None

    def after_backward(self, grads: Mapping[str, torch.Tensor]) -> None:
        """Sees dL/d(effective weight) of the step (movement accumulates its scores)."""
        return None

    @abstractmethod
    def after_step(self, step: int) -> None:
        """After optimizer step ``step`` (0-based): dual ascent, masks for the next step."""

    @abstractmethod
    def kept(self) -> dict[str, torch.Tensor]:
        """Per tensor, the boolean mask of weights the method currently keeps."""

    def restarted(self) -> bool:
        """True right after the multiplier restarted at 0 (the target was met): the
        optimizer then forgets the momentum of the method's own parameters, which would
        otherwise carry them well past the target (measured: str at 0.007 density for a
        0.02 target on the digits CNN)."""
        return False

    def state(self) -> dict[str, float]:
        """Scalars for the trajectory beside the density (the Lagrange multiplier)."""
        return {}

    @abstractmethod
    def learned(self) -> dict[str, Learned]:
        """The end of training: see ``Learned``."""

    def notes(self) -> dict[str, Any]:
        """What the report says about the method's own choices."""
        return {}

    def density(self) -> float:
        kept = self.kept()
        return sum(int(k.sum()) for k in kept.values()) / max(self.total, 1)


# The learned methods by method name: each registers itself (``@LEARNED.register``).
LEARNED = MethodRegistry[LearnedMethod](
    "learned", LearnedMethod, "pruning.training.learned.LEARNED"
)
