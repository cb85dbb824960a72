"""The engine's entry for retraining: load the data, build the trainable view, train on the
schedule with pruning events in between, re-estimate batch norm, write every trained value
back into the model adapter, and describe it all for the report's ``training`` block."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pruning.context import JobContext
from pruning.errors import InvalidSpec
from pruning.progress import Progress
from pruning.spec import PruneSpec
from pruning.training import batchnorm
from pruning.training.data import Split, TrainingData, load_training_data
from pruning.training.events import channel_counts, event_target
from pruning.training.loop import LoopResult, Pruner, TrainingLoop
from pruning.training.losses import Loss, make_loss
from pruning.training.masks import FixedMasks
from pruning.training.regrow import Shadows
from pruning.training.schedules import SparsitySchedule, lr_factor, plan_schedule
from pruning.training.spec import RetrainSpec
from pruning.training.trainable import Trainable, check_against_runtime, trainable


@dataclass(frozen=True)
class EventNotes:
    """What one pruning pass reports: the calibration and structure blocks (or None)."""

    calibration: dict[str, Any] | None
    structure: dict[str, Any] | None


# The job's context with this event's spec (its sparsity), plan (its overrides) and progress
PruneOnce = Callable[[JobContext], EventNotes]


@dataclass(frozen=True)
class TrainingOutcome:
    report: dict[str, Any]  # the report's ``training`` block
    notes: EventNotes  # of the last pruning event
    prune_s: float  # time in pruning events, inside the training time
    time_s: float


def prune_with_training(ctx: JobContext, prune_once: PruneOnce) -> TrainingOutcome:
    start = time.perf_counter()
    return seeded_training(ctx, lambda data, loss: _train(ctx, data, loss, prune_once, start))


def seeded_training(
    ctx: JobContext, train: Callable[[TrainingData, Loss], TrainingOutcome]
) -> TrainingOutcome:
    """Load the retraining data and its loss, then `train` within the job's thread budget and
    under the spec's seed (dropout, and anything else random in training)."""
    spec = ctx.spec
    retrain = spec.retrain
    assert retrain is not None
    data = load_training_data(
        dataset_path(retrain, ctx.datasets),
        retrain.dataset_id,
        ctx.inputs.inputs,
        retrain.batch_size,
        retrain.validation_split,
        retrain.max_samples,
    )
    loss = make_loss(retrain.loss, retrain.temperature, data, retrain.alpha)
    previous_threads = torch.get_num_threads()
    # The job's thread budget is the one its latency runs get; more threads than cores
    # (a shared worker) slowed training tenfold where measured.
    torch.set_num_threads(threads_for(spec))
    try:
        with torch.random.fork_rng():
            torch.manual_seed(retrain.seed)
            return train(data, loss)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    ctx: JobContext, data: TrainingData, loss: Loss, prune_once: PruneOnce, start: float
) -> TrainingOutcome:
    model, plan, spec, step = ctx.model, ctx.plan, ctx.spec, ctx.step
    retrain = spec.retrain
    assert retrain is not None
    view = trainable(model, plan.selected)
    probe = next(data.in_order(data.train))
    check_against_runtime(model, view, probe.inputs)
    norms = batchnorm.batch_norm_layers(view.module)
    trains_norms = batchnorm.trains_statistics(view, norms, probe)
    if loss.needs_teacher:
        data = with_teacher(view, data)
    schedule = plan_schedule(spec.schedule, retrain.epochs, data.batches_per_epoch)
    pruner = ScheduledPruner(ctx, view, schedule, prune_once)
    loop = TrainingLoop(
        view=view,
        data=data,
        loss=loss,
        optimizer=_optimizer(retrain, view.parameters),
        schedule=schedule,
        pruner=pruner,
        epochs=retrain.epochs,
        on_epoch=lambda e, total, point: step("retrain", e / total, epoch_info(e, total, point)),
        generator=torch.Generator().manual_seed(retrain.seed),
        lr_at=_lr_at(retrain, retrain.epochs * data.batches_per_epoch, schedule.steps[-1]),
    )
    result = loop.run()
    batches = batchnorm.reestimate(view, norms, data.in_order(data.train)) if trains_norms else 0
    view.module.eval()
    view.write_back()
    took = time.perf_counter() - start
    report = _report(
        spec, data, result, view, pruner, batchnorm.describe(norms, trains_norms, batches), took
    )
    return TrainingOutcome(report, pruner.notes, pruner.prune_s, took)


class ScheduledPruner(Pruner):
    """A pruning event: torch values into the adapter, regrow, prune with the spec's method
    to the event's target (overrides follow the schedule to their own targets), then the
    adapter's zeros back into torch and new masks from them."""

    def __init__(
        self, ctx: JobContext, view: Trainable, schedule: SparsitySchedule, prune_once: PruneOnce
    ) -> None:
        self.ctx, self.plan, self.spec, self.view = ctx, ctx.plan, ctx.spec, view
        self.schedule, self.prune_once = schedule, prune_once
        assert ctx.spec.retrain is not None
        self.shadows = Shadows() if ctx.spec.retrain.regrow else None
        self.masks = FixedMasks(b.tensor for b in view.weights.values())
        self.notes = EventNotes(None, None)
        self.prune_s = 0.0

    def fire(self, index: int) -> dict[str, Any]:
        began = time.perf_counter()
        self.view.module.eval()
        self.view.write_back()  # methods read biases and norms too (ONNX: from the graph)
        before = self.shadows.before_event(self.plan.selected) if self.shadows else None
        event = event_target(self.spec, self.schedule.target(index, self.spec.sparsity))
        overrides = {n: self.schedule.target(index, f) for n, f in self.plan.overrides.items()}
        plan = dataclasses.replace(self.plan, overrides=overrides)
        # Only the first event reports progress under "prune": later ones run inside "retrain".
        progress = self.ctx.step if index == 0 else Progress(None)
        details = dict(event.details)
        if event.spec is not None:
            self.notes = self.prune_once(self.ctx.with_(spec=event.spec, plan=plan, step=progress))
            details.update(channel_counts(self.notes.structure))
        if self.shadows is not None and before is not None:
            self.shadows.after_event(self.plan.selected, before)
        self.view.load_pruned()
        for p in self.view.parameters:  # gradient methods (obd, taylor) switch these off
            p.requires_grad_(True)
        self.masks = FixedMasks(b.tensor for b in self.view.weights.values())
        self.prune_s += time.perf_counter() - began
        return {"sparsity": self.masks.sparsity, **details}


def with_teacher(view: Trainable, data: TrainingData) -> TrainingData:
    """The dense model's first output for every sample, before any pruning (distillation)."""

    def outputs(split: Split) -> Split:
        view.module.eval()
        with torch.no_grad():
            parts = [view.forward(b.inputs).detach().clone() for b in data.in_order(split)]
        return dataclasses.replace(split, teacher=torch.cat(parts))

    validation = None if data.validation is None else outputs(data.validation)
    return dataclasses.replace(data, train=outputs(data.train), validation=validation)


def threads_for(spec: PruneSpec) -> int:
    return spec.latency.threads if spec.latency is not None else 1


def _optimizer(retrain: RetrainSpec, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if retrain.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=retrain.lr, momentum=retrain.momentum, weight_decay=retrain.weight_decay
        )
    return torch.optim.Adam(parameters, lr=retrain.lr, weight_decay=retrain.weight_decay)


def _lr_at(retrain: RetrainSpec, total: int, last_event: int) -> Callable[[int], float]:
    """The rate at each step; ``cosine`` decays after the schedule's last pruning event."""

    def at(step: int) -> float:
        factor = lr_factor(retrain.lr_schedule, retrain.warmup, step, total, last_event)
        return retrain.lr * factor

    return at


def dataset_path(retrain: RetrainSpec, datasets: Mapping[str, Path]) -> Path:
    if retrain.dataset_id not in datasets:
        raise InvalidSpec(
            f"dataset {retrain.dataset_id!r} was not provided", field="retrain.dataset_id"
        )
    return Path(datasets[retrain.dataset_id])


def epoch_info(epoch: int, epochs: int, point: dict[str, Any]) -> dict[str, Any]:
    info = {
        "epoch": epoch,
        "epochs": epochs,
        "loss": point["loss"],
        "sparsity": point["sparsity"],
        "message": f"epoch {epoch}/{epochs}: loss {point['loss']:.4g}, "
        f"sparsity {point['sparsity']:.2f}",
        "keep": True,
    }
    if "val_loss" in point:
        info["val_loss"] = point["val_loss"]
    return info


def _report(
    spec: PruneSpec,
    data: TrainingData,
    result: LoopResult,
    view: Trainable,
    pruner: ScheduledPruner,
    batch_norm: str,
    took: float,
) -> dict[str, Any]:
    retrain = spec.retrain
    assert retrain is not None
    report: dict[str, Any] = {
        "schedule": spec.schedule.to_json(),
        "dataset_id": retrain.dataset_id,
        "optimizer": retrain.optimizer,
        "lr": retrain.lr,
        "batch_size": data.batch_size,
        "epochs": retrain.epochs,
        "loss": retrain.loss,
        "samples": {
            "train": data.train.samples,
            "validation": 0 if data.validation is None else data.validation.samples,
        },
        "steps": result.steps,
        "pruning_events": result.events,
        "curve": result.curve,
        "batch_norm": batch_norm,
        "trained": view.trained,
        "frozen": view.frozen,
        "seed": retrain.seed,
        "threads": threads_for(spec),
        "time_s": round(took, 4),
    }
    if retrain.optimizer == "sgd":
        report["momentum"] = retrain.momentum
    if retrain.loss in ("distill", "cross_entropy+distill"):
        report["temperature"] = retrain.temperature
    if retrain.loss == "cross_entropy+distill":
        report["alpha"] = retrain.alpha
    report["lr_schedule"] = {"kind": retrain.lr_schedule, "warmup": retrain.warmup}
    if retrain.lr_schedule == "cosine" and result.events:
        report["lr_schedule"]["decay_from_step"] = result.events[-1]["step"]
    if pruner.shadows is not None:
        report["regrown"] = pruner.shadows.regrown
    return report
