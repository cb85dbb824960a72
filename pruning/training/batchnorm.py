"""Batch norm during retraining: layers train in training mode (batch statistics, running
averages updated), and after the last pruning event and fine-tuning their running mean and
variance are re-estimated on the training data as a cumulative average (as torch's
``momentum=None``, the estimate SWA's ``update_bn`` makes), since the averages gathered while
the weights moved describe no single model. Traced TorchScript fixes batch norm in inference
mode at trace time; then the running statistics stay as uploaded and are said to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from pruning.training.data import Split
from pruning.training.trainable import Trainable

NO_BATCH_NORM = "no batch norm"


def batch_norm_layers(module: Any) -> list[Any]:
    found = []
    for sub in module.modules():
        kind = str(getattr(sub, "original_name", type(sub).__name__))
        if "BatchNorm" in kind and hasattr(sub, "running_mean") and sub.running_mean is not None:
            found.append(sub)
    return [m for m in found if not _is_wrapper(m)]


def _is_wrapper(module: Any) -> bool:
    """onnx2pytorch's BatchNormWrapper holds the torch layer as ``bnu``."""
    return hasattr(module, "bnu")


def trains_statistics(view: Trainable, layers: list[Any], batch: Split) -> bool:
    """Whether the layers update their running statistics in training mode (a traced graph
    may have frozen them); probed on one batch, then restored."""
    if not layers:
        return False
    saved = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
    view.module.train()
    with torch.no_grad():
        view.forward(batch.inputs)
    moved = any(
        not torch.equal(m.running_mean, mean) for m, (mean, _) in zip(layers, saved, strict=True)
    )
    with torch.no_grad():
        for m, (mean, var) in zip(layers, saved, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
    view.module.eval()
    return moved


def reestimate(view: Trainable, layers: list[Any], batches: Iterable[Split]) -> int:
    """Replace running mean and variance by their cumulative average over ``batches``; for a
    layer with a fixed momentum m (TorchScript makes it a constant) each batch's statistic is
    recovered from the update r' = (1 - m) r + m b. Returns the batches used."""
    with torch.no_grad():
        for m in layers:
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
            if getattr(m, "num_batches_tracked", None) is not None:
                m.num_batches_tracked.zero_()  # momentum=None averages over this count
        view.module.train()
        count = 0
        for batch in batches:
            count += 1
            before = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
            view.forward(batch.inputs)
            for m, (mean, var) in zip(layers, before, strict=True):
                momentum = getattr(m, "momentum", 0.1)
                if momentum is None:  # torch already averages cumulatively: undo nothing
                    momentum = 1.0 / count
                for running, old in ((m.running_mean, mean), (m.running_var, var)):
                    observed = (running - (1.0 - momentum) * old) / momentum
                    running.copy_(old + (observed - old) / count)
        view.module.eval()
    return count


def describe(layers: list[Any], trained: bool, batches: int) -> str:
    if not layers:
        return NO_BATCH_NORM
    if not trained:
        return (
            f"{len(layers)} batch norm layer(s) run in inference mode in this graph (fixed when "
            "it was traced): running statistics kept as uploaded; scale and shift trained"
        )
    return (
        f"{len(layers)} batch norm layer(s) trained in training mode; after the last pruning "
        f"event and fine-tuning, running mean and variance re-estimated as a cumulative "
        f"average over {batches} training batches (no gradient), then written to the model"
    )
