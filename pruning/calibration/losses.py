"""The loss whose curvature OBD reads, and estimators of its Hessian diagonal.

Targets: integer ``labels`` give cross-entropy, float ``targets`` mean squared error; without
either, the dense model's own predictions (argmax) serve as labels, which makes the Fisher the
model's "true" Fisher at its predictions, and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pruning.calibration.dataset import CalibrationData
from pruning.calibration.gradients import Differentiable
from pruning.errors import DataMismatch, UnsupportedModel

HUTCHINSON_DRAWS = 16  # Rademacher probes: the estimate's variance falls as 1/draws


def hessian_diagonal(
    model: Differentiable, data: CalibrationData, names: Sequence[str], kind: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per weight, the estimated diagonal of the loss Hessian (in the weight's layout)."""
    labelled = data.targets is not None
    notes: dict[str, Any] = {
        "targets": "dataset labels" if labelled else "model predictions (the dataset has no labels)"
    }
    params = [p.parameter for p in model.parameters.values()]
    sums = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    if kind == "fisher":
        # Empirical Fisher: E[g g^T] with per-sample gradients g (OBD's h_kk near a minimum).
        for args, target in _samples(model, data, names, batch=1):
            loss = _loss(model.forward(args), target)
            for total, g in zip(sums, torch.autograd.grad(loss, params), strict=True):
                total += g.double().pow(2)
        scale = 1.0 / data.samples
    else:
        notes["draws"] = HUTCHINSON_DRAWS
        generator = torch.Generator().manual_seed(0)
        for _ in range(HUTCHINSON_DRAWS):
            probes = [_rademacher(p, generator) for p in params]
            for total, estimate in zip(
                sums, _z_hz(model, data, names, params, probes), strict=True
            ):
                total += estimate
        # Noise can make single entries negative; OBD's saliency needs a curvature >= 0.
        sums = [s.abs() for s in sums]
        scale = 1.0 / HUTCHINSON_DRAWS
    diagonal = {
        name: (p.gradient_as_weight(total) * scale).numpy()
        for (name, p), total in zip(model.parameters.items(), sums, strict=True)
    }
    return diagonal, notes


def _z_hz(
    model: Differentiable,
    data: CalibrationData,
    names: Sequence[str],
    params: list[torch.Tensor],
    probes: list[torch.Tensor],
) -> list[torch.Tensor]:
    """z * (H z) for the mean loss over the calibration set (Hessian-vector products by
    double backward; H z sums over batches because the loss does)."""
    hz = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    for args, target in _samples(model, data, names, batch=data.batch):
        loss = _loss(model.forward(args), target) * (len(target) / data.samples)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = torch.stack([(g * z).sum() for g, z in zip(grads, probes, strict=True)]).sum()
        for total, part in zip(hz, torch.autograd.grad(dot, params), strict=True):
            total += part.double()
    return [h * z.double() for h, z in zip(hz, probes, strict=True)]


def _samples(
    model: Differentiable, data: CalibrationData, names: Sequence[str], batch: int
) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    for feeds, labels in data.batches():
        args = [torch.from_numpy(feeds[n]) for n in names]
        targets = _targets(model, args, labels)
        size = len(targets)
        for start in range(0, size, batch):
            yield [a[start : start + batch] for a in args], targets[start : start + batch]


def _targets(model: Differentiable, args: list[torch.Tensor], labels: Any) -> torch.Tensor:
    if labels is not None:
        return torch.from_numpy(np.asarray(labels))
    with torch.no_grad():
        out = model.forward(args)
    return out.reshape(out.shape[0], -1).argmax(dim=1)


def _loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if not out.requires_grad:
        raise UnsupportedModel(
            "the model's output has no gradient with respect to its weights (an operator such "
            "as ArgMax or Hardmax cuts it); OBD needs one: use 'wanda' or 'sparsegpt'"
        )
    logits = out.reshape(out.shape[0], -1)
    if not target.is_floating_point():
        if target.dim() != 1 or int(target.max()) >= logits.shape[1] or int(target.min()) < 0:
            raise DataMismatch(
                f"labels must be class indices in [0, {logits.shape[1]}) with one per sample"
            )
        return F.cross_entropy(logits, target.long())
    if target.numel() != out.numel():
        raise DataMismatch(
            f"targets have shape {list(target.shape)}, but the model's output is "
            f"{list(out.shape)}; give one target per output value"
        )
    return F.mse_loss(out, target.reshape(out.shape).to(out.dtype))


def _rademacher(p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, p.shape, generator=generator, dtype=torch.int8)
    return signs.to(p.dtype) * 2 - 1
