"""The engine's entry for a learned-sparsity method: train the method's weights and its
sparsity parameters together on the ``retrain`` data, project onto exactly the requested
sparsity by the method's score, re-estimate batch norm, and describe it all in the report's
``training`` block (with ``learned``: the density trajectory, the learned density and its gap
to the target, and the learned per-layer sparsity)."""

from __future__ import annotations

import time
from typing import Any

import torch

from pruning.context import JobContext
from pruning.layers import LayerPlan
from pruning.progress import Progress
from pruning.spec import PruneSpec
from pruning.training import batchnorm
from pruning.training.data import Split, TrainingData
from pruning.training.learned.base import LEARNED, LearnedMethod, Setup
from pruning.training.learned.fixed import FixedMask
from pruning.training.learned.projection import prepare, project
from pruning.training.losses import Loss, accuracy
from pruning.training.run import (
    EventNotes,
    TrainingOutcome,
    epoch_info,
    seeded_training,
    threads_for,
    with_teacher,
)
from pruning.training.spec import RetrainSpec
from pruning.training.trainable import Trainable, check_against_runtime, trainable

TRAJECTORY_POINTS = 200  # at most this many, evenly spaced steps, plus the last


def train_learned(ctx: JobContext) -> TrainingOutcome:
    start = time.perf_counter()
    return seeded_training(ctx, lambda data, loss: _train(ctx, data, loss, start))


def _train(ctx: JobContext, data: TrainingData, loss: Loss, start: float) -> TrainingOutcome:
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
    tail = _finetune_epochs(spec)
    per_epoch = data.batches_per_epoch
    learn_steps = (retrain.epochs - tail) * per_epoch
    method = LEARNED[spec.method.name](_setup(plan, spec, view, learn_steps))
    generator = torch.Generator().manual_seed(retrain.seed)
    progress = _Progress(step, retrain.epochs, per_epoch, learn_steps + tail * per_epoch)
    learner = _Trainer(view, method, loss, _optimizer(retrain, view, method), progress)
    detach = method.attach(view.module)
    try:
        learner.run(data, generator, range(1, retrain.epochs - tail + 1))
    finally:
        detach()
    learned_density = method.density()
    notes = method.notes()
    began = time.perf_counter()
    view.module.eval()
    start_point = prepare(method.learned(), {n: b.transposed for n, b in view.weights.items()})
    with torch.no_grad():
        for name, b in view.weights.items():
            b.tensor.copy_(start_point.values[name])
    view.write_back()
    moved = project(plan.selected, start_point, spec.sparsity, spec.scope, plan.overrides)
    view.load_pruned()
    prune_s = time.perf_counter() - began
    if tail:
        fixed = FixedMask(_setup(plan, spec, view, tail * per_epoch))
        tuner = _Trainer(view, fixed, loss, _optimizer(retrain, view, fixed), progress)
        tuner.run(data, generator, range(retrain.epochs - tail + 1, retrain.epochs + 1))
        tuner.write(training=False)
    batches = batchnorm.reestimate(view, norms, data.in_order(data.train)) if trains_norms else 0
    view.module.eval()
    view.write_back()
    took = time.perf_counter() - start
    described = batchnorm.describe(norms, trains_norms, batches)
    report = _report(spec, data, progress.curve, progress.steps, view, described, took)
    report["learned"] = {
        "method": spec.method.name,
        **_gap(learned_density, _target_density(plan, spec)),
        "learning_epochs": retrain.epochs - tail,
        "finetune_epochs": tail,
        "projection": {"step": learn_steps, "score": notes.pop("score", ""), **moved["moved"]},
        "layers": moved["layers"],
        "trajectory": progress.trajectory,
        **notes,
    }
    return TrainingOutcome(report, EventNotes(None, None), prune_s, took)


def _gap(learned: float, target: float) -> dict[str, float]:
    return {
        "target_density": round(target, 6),
        "learned_density": round(learned, 6),
        "learned_sparsity": round(1.0 - learned, 6),
        "gap": round(learned - target, 6),
    }


def _setup(plan: LayerPlan, spec: PruneSpec, view: Trainable, total_steps: int) -> Setup:
    s = spec.schedule
    ramp = (s.pruning_fraction, s.exponent, s.initial_sparsity)
    if s.kind != "gradual":
        ramp = (0.75, 3.0, 0.0)
    return Setup(
        weights={n: b.tensor for n, b in view.weights.items()},
        target_density=_target_density(plan, spec),
        total_steps=total_steps,
        scope=spec.scope,
        options=dict(spec.method.options),
        ramp=ramp,
    )


def _target_density(plan: LayerPlan, spec: PruneSpec) -> float:
    """The density the projection ends at over the selected weights (overrides included)."""
    total = sum(t.numel for t in plan.selected)
    kept = sum(t.numel * (1.0 - plan.overrides.get(t.name, spec.sparsity)) for t in plan.selected)
    return kept / max(total, 1)


def _optimizer(
    retrain: RetrainSpec, view: Trainable, method: LearnedMethod
) -> torch.optim.Optimizer:
    """The model's other trained values and the method's latent weights at ``retrain.lr``;
    the method's own parameters at its ``lr``. The view's weight tensors are not stepped:
    the method writes them before every step."""
    weights = {id(b.tensor) for b in view.weights.values()}
    groups: list[dict[str, Any]] = [
        {
            "params": [p for p in view.parameters if id(p) not in weights]
            + list(method.theta.values())
        },
    ]
    extra = method.extra_parameters()
    if extra:
        groups.append({"params": extra, "lr": method.extra_lr, "weight_decay": 0.0})
    if retrain.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=retrain.lr, momentum=retrain.momentum, weight_decay=retrain.weight_decay
        )
    return torch.optim.Adam(groups, lr=retrain.lr, weight_decay=retrain.weight_decay)


def _finetune_epochs(spec: PruneSpec) -> int:
    """The last ``finetune_fraction`` of the epochs (by default a quarter, as gradual pruning's
    tail) train the projected mask, fixed; at least one learning epoch stays."""
    retrain = spec.retrain
    assert retrain is not None
    fraction = float(dict(spec.method.options)["finetune_fraction"])
    return min(retrain.epochs - 1, round(retrain.epochs * fraction))


class _Progress:
    """The curve (one point per epoch) and the density trajectory (evenly spaced steps)
    over both phases, and the job's progress."""

    def __init__(self, step: Progress, epochs: int, per_epoch: int, total_steps: int) -> None:
        self.step, self.epochs, self.per_epoch = step, epochs, per_epoch
        self.total_steps = total_steps
        self.every = max(1, total_steps // TRAJECTORY_POINTS)
        self.curve: list[dict[str, Any]] = []
        self.trajectory: list[dict[str, Any]] = []
        self.steps = 0

    def at_step(self, method: LearnedMethod, phase: str) -> None:
        if self.trajectory and self.steps % self.every and self.steps != self.total_steps:
            return
        self.trajectory.append(
            {
                "step": self.steps,
                "epoch": round(self.steps / self.per_epoch, 4),
                "phase": phase,
                "density": round(method.density(), 6),
                **{k: round(v, 6) for k, v in method.state().items()},
            }
        )

    def at_epoch(self, epoch: int, point: dict[str, Any]) -> None:
        self.curve.append(point)
        self.step("retrain", epoch / self.epochs, epoch_info(epoch, self.epochs, point))


class _Trainer:
    def __init__(
        self,
        view: Trainable,
        method: LearnedMethod,
        loss: Loss,
        optimizer: torch.optim.Optimizer,
        progress: _Progress,
    ) -> None:
        self.view, self.method, self.loss, self.optimizer = view, method, loss, optimizer
        self.progress = progress
        self.phase = "finetune" if isinstance(method, FixedMask) else "learn"

    def run(self, data: TrainingData, generator: torch.Generator, epochs: range) -> None:
        self.progress.at_step(self.method, self.phase)
        step = 0
        for epoch in epochs:
            total, seen = 0.0, 0
            for batch in data.epoch(generator):
                total += self._step(batch, step) * batch.samples
                seen += batch.samples
                step += 1
                self.progress.steps += 1
                self.progress.at_step(self.method, self.phase)
            point: dict[str, Any] = {
                "step": self.progress.steps,
                "epoch": epoch,
                "phase": self.phase,
                "loss": total / max(seen, 1),
                "sparsity": round(1.0 - self.method.density(), 6),
            }
            if data.validation is not None:
                point.update(self._validate(data, data.validation))
            self.progress.at_epoch(epoch, point)

    def write(self, training: bool) -> dict[str, torch.Tensor]:
        effective = self.method.effective(training)
        with torch.no_grad():
            for name, b in self.view.weights.items():
                b.tensor.copy_(effective[name].detach())
        return effective

    def _step(self, batch: Split, step: int) -> float:
        self.view.module.train()
        self.optimizer.zero_grad(set_to_none=True)
        effective = self.write(training=True)
        task = self.loss.fn(self.view.forward(batch.inputs), batch)
        task.backward()  # type: ignore[no-untyped-call]
        grads = {}
        for name, b in self.view.weights.items():
            grad = b.tensor.grad
            grads[name] = torch.zeros_like(effective[name]) if grad is None else grad.float()
            b.tensor.grad = None  # the view's weight is not stepped; the latent weight is
        self.method.after_backward(grads)
        # One backward through the method: the chain from the effective weights (the task
        # gradient) and the sparsity term share the method's graph.
        roots = [effective[n] for n in grads]
        seeds = [grads[n] for n in grads]
        penalty = self.method.penalty()
        if penalty is not None:
            roots.append(penalty)
            seeds.append(torch.ones_like(penalty))
        pairs = [(r, g) for r, g in zip(roots, seeds, strict=True) if r.requires_grad]
        if pairs:
            torch.autograd.backward([r for r, _ in pairs], [g for _, g in pairs])
        self.optimizer.step()
        self.method.after_step(step)
        if self.method.restarted():
            for p in self.method.extra_parameters():
                self.optimizer.state.pop(p, None)
        return float(task.detach())

    def _validate(self, data: TrainingData, split: Split) -> dict[str, float]:
        self.write(training=False)
        self.view.module.eval()
        total, correct, seen = 0.0, 0.0, 0
        with torch.no_grad():
            for batch in data.in_order(split):
                out = self.view.forward(batch.inputs)
                total += float(self.loss.fn(out, batch)) * batch.samples
                if batch.labels is not None:
                    correct += accuracy(out, batch.labels) * batch.samples
                seen += batch.samples
        found = {"val_loss": total / max(seen, 1)}
        if split.labels is not None:
            found["val_accuracy"] = correct / max(seen, 1)
        return found


def _report(
    spec: PruneSpec,
    data: TrainingData,
    curve: list[dict[str, Any]],
    steps: int,
    view: Trainable,
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
        "steps": steps,
        "pruning_events": [],
        "curve": curve,
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
    return report
