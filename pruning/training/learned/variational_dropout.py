"""Sparse variational dropout (Molchanov et al. 2017) at a controlled density.

Each weight is Gaussian, w ~ N(theta, sigma^2), alpha = sigma^2/theta^2; log sigma^2 is learned
(the additive reparameterisation, so the gradient of theta does not carry the noise's scale).
The KL term is Molchanov's approximation -KL ≈ k1 sigmoid(k2 + k3 log_alpha) - ½ log(1 +
1/alpha) - k1; weights with log_alpha above ``threshold`` (3: the noise swamps the weight) are
dropped. Its weight lambda is a Lagrange multiplier raised by dual ascent while more than the
target density of weights stay below the threshold (Gallego-Posada et al. 2022) instead of the
ELBO's fixed 1/N.

Training samples the noise by the local reparameterisation (``local_reparam.py``): each
Linear (Gemm, MatMul) and Conv layer's pre-activations are drawn from N(x·theta, x^2·sigma^2)
per example. Where the layer's forward cannot be reached (a compiled TorchScript module) the
weights are sampled instead, once per mini-batch: an unbiased, higher-variance gradient
estimator of the same objective; the report's ``noise`` says which weights got which."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from pruning.training.learned.base import LEARNED, Learned, LearnedMethod, Setup
from pruning.training.learned.dual import Multiplier
from pruning.training.learned.local_reparam import attach, reachable_layers

K1, K2, K3 = 0.63576, 1.87320, 1.48695


@LEARNED.register
class VariationalDropoutMethod(LearnedMethod):
    name: ClassVar[str] = "variational_dropout"
    DEFAULT_LR: ClassVar[float] = 0.1
    DEFAULT_DUAL_LR: ClassVar[float] = 20.0

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.threshold = float(setup.options["threshold"])
        init = float(setup.options["init_log_alpha"])
        self.log_sigma2 = {
            n: torch.nn.Parameter(torch.log(t.detach() ** 2 + 1e-8) + init)
            for n, t in self.theta.items()
        }
        self.multiplier = Multiplier(setup.target_density, self.dual_lr)
        self.local: set[str] = set()  # weights sampled by the local reparameterisation
        self.hooked = False  # the hooks are attached: those weights get no weight noise

    def attach(self, module: Any) -> Callable[[], None]:
        layers = reachable_layers(module, self.setup.weights)
        self.local = set(layers)
        detach = attach(layers, self.sigma2)
        self.hooked = True

        def undo() -> None:
            detach()
            self.hooked = False

        return undo

    def sigma2(self, name: str) -> torch.Tensor:
        """The weight's variance, zero where it is dropped (as its mean is)."""
        with torch.no_grad():
            kept = self.log_alpha(name) < self.threshold
        return torch.exp(self.log_sigma2[name]) * kept

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.log_sigma2.values())

    def log_alpha(self, name: str) -> torch.Tensor:
        theta = self.theta[name]
        return (self.log_sigma2[name] - torch.log(theta**2 + 1e-8)).clamp(-10.0, 10.0)

    def effective(self, training: bool) -> dict[str, torch.Tensor]:
        out = {}
        for n, theta in self.theta.items():
            kept = self.log_alpha(n) < self.threshold
            if training and not (self.hooked and n in self.local):
                # A dropped weight's noise (sigma > 4.5 |theta| past the threshold) would
                # swamp the layer: it computes as dropped.
                noise = torch.randn_like(theta) * torch.exp(self.log_sigma2[n] / 2)
                out[n] = (theta + noise) * kept
            else:
                out[n] = theta * kept
        return out

    def penalty(self) -> torch.Tensor:
        kl = sum(_kl(self.log_alpha(n)).sum() for n in self.theta)
        return self.multiplier.value * torch.as_tensor(kl) / max(self.total, 1)

    def after_step(self, step: int) -> None:
        self.multiplier.ascend(self.density())

    def kept(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {n: self.log_alpha(n) < self.threshold for n in self.theta}

    def restarted(self) -> bool:
        return self.multiplier.restarted

    def state(self) -> dict[str, float]:
        return {"multiplier": self.multiplier.value}

    @property
    def noise(self) -> dict[str, str]:
        """Per weight, how training sampled its noise."""
        return {
            n: "local reparameterisation (pre-activations per example)"
            if n in self.local
            else "per weight, once per mini-batch (the layer's forward is not reachable: "
            "compiled TorchScript, or not a Linear/Conv module)"
            for n in self.theta
        }

    def learned(self) -> dict[str, Learned]:
        with torch.no_grad():
            values = self.effective(training=False)
            return {
                n: Learned(values[n], self.theta[n].detach(), -self.log_alpha(n))
                for n in self.theta
            }

    def notes(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "noise": self.noise,
            "score": "-log alpha",
            "multiplier": self.multiplier.value,
            "dual_lr": self.multiplier.rate,
        }


def _kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """Molchanov et al. 2017, eq. 14: KL(q || log-uniform prior) per weight, up to a constant."""
    neg_kl = K1 * torch.sigmoid(K2 + K3 * log_alpha) - 0.5 * torch.log1p(torch.exp(-log_alpha)) - K1
    return -neg_kl
