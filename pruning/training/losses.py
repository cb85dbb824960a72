"""Training losses on the model's first output; classes and distributions run over its last
axis (as the evaluation's argmax does)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pruning.errors import DataMismatch
from pruning.training.data import Split, TrainingData

# (model output, the batch it came from) -> scalar loss
LossFn = Callable[[torch.Tensor, Split], torch.Tensor]


@dataclass(frozen=True)
class Loss:
    name: str
    fn: LossFn
    needs_teacher: bool = False


def make_loss(name: str, temperature: float, data: TrainingData, alpha: float = 0.5) -> Loss:
    """The loss, refusing a dataset that lacks what it needs (naming the missing array).
    ``alpha`` weighs the distillation term of ``cross_entropy+distill``."""
    if name == "cross_entropy+distill":
        _require_labels(name, data)

        def both(out: torch.Tensor, batch: Split) -> torch.Tensor:
            hard = cross_entropy(out, _need(batch.labels))
            return (1 - alpha) * hard + alpha * distill(out, _need(batch.teacher), temperature)

        return Loss(name, both, True)
    if name == "cross_entropy":
        _require_labels(name, data)
        return Loss(name, lambda out, batch: cross_entropy(out, _need(batch.labels)))
    if name == "mse":
        if data.train.targets is None:
            raise DataMismatch(
                "retrain.loss 'mse' needs float 'targets' (or float 'labels') shaped like the "
                "model's first output; the dataset has none",
                field="targets",
            )
        return Loss(name, lambda out, batch: mse(out, _need(batch.targets)))
    return Loss(name, lambda out, batch: distill(out, _need(batch.teacher), temperature), True)


def _require_labels(name: str, data: TrainingData) -> None:
    if data.train.labels is None:
        raise DataMismatch(
            f"retrain.loss {name!r} needs integer class ids in an array 'labels'; "
            "the dataset has none (use loss 'distill' to train without labels)",
            field="labels",
        )


def cross_entropy(out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    classes = out.shape[-1]
    if labels.ndim == out.ndim and labels.shape[-1] == 1:  # a column of ids, as y.reshape(-1, 1)
        labels = labels.squeeze(-1)
    if tuple(labels.shape) != tuple(out.shape[:-1]):
        raise DataMismatch(
            f"labels have shape {list(labels.shape)}, but the model's first output is "
            f"{list(out.shape)}: give one class id per output row (classes on the last axis)",
            field="labels",
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise DataMismatch(f"labels must be class ids in [0, {classes})", field="labels")
    return F.cross_entropy(out.reshape(-1, classes), labels.reshape(-1))


def mse(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if targets.numel() != out.numel():
        raise DataMismatch(
            f"targets have shape {list(targets.shape)}, but the model's first output is "
            f"{list(out.shape)}; give one target per output value",
            field="targets",
        )
    return F.mse_loss(out, targets.reshape(out.shape).to(out.dtype))


def distill(out: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015: KL(softmax(t/T) || softmax(s/T)) over the last axis, times T^2 so
    the gradient's scale does not depend on T."""
    classes = out.shape[-1]
    student = F.log_softmax(out.reshape(-1, classes) / temperature, dim=-1)
    target = F.log_softmax(teacher.reshape(-1, classes).to(out.dtype) / temperature, dim=-1)
    kl = F.kl_div(student, target, reduction="batchmean", log_target=True)
    return kl * temperature**2


def accuracy(out: torch.Tensor, labels: torch.Tensor) -> float:
    return float((out.argmax(dim=-1) == labels.reshape(out.shape[:-1])).double().mean())


def _need(value: torch.Tensor | None) -> torch.Tensor:
    assert value is not None  # make_loss checked the dataset has it
    return value
