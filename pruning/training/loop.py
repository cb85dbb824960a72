"""The training loop: optimizer steps with fixed masks, pruning events where the schedule
puts them, and one curve point per epoch and per event. Cancellation is the worker killing
this process, so a step is the longest it can take to stop; nothing is saved until the end."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pruning.training.data import Split, TrainingData
from pruning.training.losses import Loss, accuracy
from pruning.training.masks import FixedMasks
from pruning.training.schedules import SparsitySchedule
from pruning.training.trainable import Trainable

# Called at each epoch's end: (epoch, epochs, the curve point)
EpochCallback = Callable[[int, int, dict[str, Any]], None]


class Pruner(ABC):
    """Fires pruning event ``index``; ``masks`` are those of the latest event."""

    masks: FixedMasks

    @abstractmethod
    def fire(self, index: int) -> dict[str, Any]:
        """Prune to event ``index``'s target; return the report's event entry: at least
        ``sparsity``, the fraction of the pruned weights now zero."""


@dataclass
class LoopResult:
    curve: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0


@dataclass
class TrainingLoop:
    view: Trainable
    data: TrainingData
    loss: Loss
    optimizer: torch.optim.Optimizer
    schedule: SparsitySchedule
    pruner: Pruner
    epochs: int
    on_epoch: EpochCallback
    generator: torch.Generator
    lr_at: Callable[[int], float] | None = None  # step -> learning rate; None keeps it
    result: LoopResult = field(default_factory=LoopResult)
    _next_event: int = 0

    def run(self) -> LoopResult:
        per_epoch = self.data.batches_per_epoch
        step = 0
        for epoch in range(1, self.epochs + 1):
            total, seen = 0.0, 0
            for batch in self.data.epoch(self.generator):
                self._events_due(step, batch, per_epoch)
                self._set_lr(step)
                total += self._step(batch) * batch.samples
                seen += batch.samples
                step += 1
            self.result.curve.append(self._epoch_point(step, epoch, total / max(seen, 1)))
            self.on_epoch(epoch, self.epochs, self.result.curve[-1])
        if self._next_event < len(self.schedule.steps):  # a schedule too dense for T steps
            first = next(self.data.in_order(self.data.train))
            self._events_due(sys.maxsize, first, per_epoch, at=step)
        self.result.steps = step
        return self.result

    def _set_lr(self, step: int) -> None:
        if self.lr_at is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(step)

    def _step(self, batch: Split) -> float:
        self.view.module.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss.fn(self.view.forward(batch.inputs), batch)
        loss.backward()  # type: ignore[no-untyped-call]
        self.pruner.masks.zero_gradients()
        self.optimizer.step()
        self.pruner.masks.apply()
        return float(loss.detach())

    def _events_due(self, step: int, batch: Split, per_epoch: int, at: int | None = None) -> None:
        """Fire every event scheduled at or before ``step`` (recorded at ``at`` if given)."""
        while (
            self._next_event < len(self.schedule.steps)
            and self.schedule.steps[self._next_event] <= step
        ):
            index = self._next_event
            self._next_event += 1
            where = self.schedule.steps[index] if at is None else at
            fired = self.pruner.fire(index)
            sparsity = fired["sparsity"]
            epoch = round(where / per_epoch, 4)
            self.result.events.append({"step": where, "epoch": epoch, **fired})
            point = {"step": where, "epoch": epoch, "loss": self._loss_on(batch)}
            self.result.curve.append({**point, "sparsity": sparsity, "event": index})

    def _loss_on(self, batch: Split) -> float:
        """The loss right after an event, on the batch about to be trained on."""
        self.view.module.eval()
        with torch.no_grad():
            return float(self.loss.fn(self.view.forward(batch.inputs), batch))

    def _epoch_point(self, step: int, epoch: int, loss: float) -> dict[str, Any]:
        point: dict[str, Any] = {
            "step": step,
            "epoch": epoch,
            "loss": loss,
            "sparsity": self.pruner.masks.sparsity,
        }
        if self.data.validation is not None:
            point.update(self.validate(self.data.validation))
        return point

    def validate(self, split: Split) -> dict[str, float]:
        self.view.module.eval()
        total, correct, seen = 0.0, 0.0, 0
        with torch.no_grad():
            for batch in self.data.in_order(split):
                out = self.view.forward(batch.inputs)
                total += float(self.loss.fn(out, batch)) * batch.samples
                if batch.labels is not None:
                    correct += accuracy(out, batch.labels) * batch.samples
                seen += batch.samples
        found = {"val_loss": total / max(seen, 1)}
        if split.labels is not None:
            found["val_accuracy"] = correct / max(seen, 1)
        return found
