"""Masks-fixed distillation after a one-shot pass (issue 15), on the unlabeled calibration
samples: the pruned model (student) is trained to give, at each pruned layer, the output the
dense model (teacher) gives there, and at the model's first output the dense output. Both
terms are squared errors relative to the dense values, so layers of any scale weigh alike.

The teacher is a frozen copy of the torch view taken before pruning: one extra forward per
step instead of every layer's dense output held for every sample (GBs on an encoder)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pruning.calibration.dataset import load_calibration, require_calibration
from pruning.context import JobContext
from pruning.training.masks import FixedMasks
from pruning.training.schedules import lr_factor
from pruning.training.spec import DistillSpec
from pruning.training.taps import Tapped, Taps, taps
from pruning.training.trainable import check_against_runtime, trainable

WARMUP = 0.05  # share of the steps with a rising learning rate, then a cosine decay
_EPS = 1e-12


@dataclass(frozen=True)
class DistillOutcome:
    report: dict[str, Any]  # the report's ``distill`` block
    prune_s: float  # time of the one-shot pass inside it


def prune_then_distill(ctx: JobContext, prune: Callable[[], None], threads: int) -> DistillOutcome:
    """Copy the dense model, run ``prune`` (the one-shot pass, into the adapter), then
    distill with the zeros kept and write every trained value back into the adapter."""
    model, plan, spec, inputs, datasets = ctx.model, ctx.plan, ctx.spec, ctx.inputs, ctx.datasets
    distill = spec.distill
    assert distill is not None and spec.calibration is not None  # parse_spec checked
    path = require_calibration("distill", spec.calibration, datasets)
    data = load_calibration(
        path, spec.calibration.dataset_id, spec.calibration.samples, inputs.inputs
    )
    args = [torch.from_numpy(data.inputs[name]) for name in inputs.names]
    view = trainable(model, plan.selected)
    check_against_runtime(model, view, [a[: distill.batch_size] for a in args])
    teacher = copy.deepcopy(view.module).eval()  # runs under no_grad only
    tap = taps(model, view, [t.name for t in plan.selected])
    began = time.perf_counter()
    prune()
    prune_s = time.perf_counter() - began
    view.load_pruned()
    masks = FixedMasks(b.tensor for b in view.weights.values())
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(distill.seed)
            report = _distill(distill, view.module, teacher, tap, masks, view.parameters, args)
    finally:
        torch.set_num_threads(previous)
    view.write_back()
    report.update(
        layers=len(tap.layers),
        unmatched=[n for n in (t.name for t in plan.selected) if n not in tap.layers],
        trained=len(view.trained),
        time_s=round(time.perf_counter() - began - prune_s, 4),
    )
    return DistillOutcome(report, prune_s)


def _distill(
    distill: DistillSpec,
    student: Any,
    teacher: Any,
    tap: Tapped,
    masks: FixedMasks,
    parameters: list[torch.nn.Parameter],
    args: Sequence[torch.Tensor],
) -> dict[str, Any]:
    samples = int(args[0].shape[0])
    batch = min(distill.batch_size, samples)
    student.eval()  # dropout off, batch norm on the dense statistics: match, not regularise
    before = _measure(distill, student, teacher, tap, args, batch)
    optimizer = torch.optim.Adam(parameters, lr=distill.lr)
    order = torch.Generator().manual_seed(distill.seed)
    perm, at = torch.randperm(samples, generator=order), 0
    for step in range(distill.steps):
        if at + batch > samples:
            perm, at = torch.randperm(samples, generator=order), 0
        rows = perm[at : at + batch]
        at += batch
        part = [a[rows] for a in args]
        for group in optimizer.param_groups:
            group["lr"] = distill.lr * lr_factor("cosine", WARMUP, step, distill.steps)
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            dense = tap(teacher, part)
        loss = _loss(distill, tap(student, part), dense)
        loss.backward()  # type: ignore[no-untyped-call]
        masks.zero_gradients()
        optimizer.step()
        masks.apply()
    after = _measure(distill, student, teacher, tap, args, batch)
    return {
        "data": "calibration",
        "samples": samples,
        "steps": distill.steps,
        "lr": distill.lr,
        "lr_schedule": {"kind": "cosine", "warmup": WARMUP},
        "batch_size": batch,
        "weights": {"layerwise": distill.layerwise, "output": distill.output},
        "sparsity": round(masks.sparsity, 6),
        "loss_before": before["loss"],
        "loss_after": after["loss"],
        "fidelity_before": before["cosine"],
        "fidelity_after": after["cosine"],
    }


def _loss(distill: DistillSpec, got: Taps, dense: Taps) -> torch.Tensor:
    total = distill.output * _relative(got[0], dense[0])
    layers = [
        _relative(s, t)
        for name, outs in dense[1].items()
        for s, t in zip(got[1][name], outs, strict=True)
    ]
    if layers and distill.layerwise:
        total = total + distill.layerwise * torch.stack(layers).mean()
    return total


def _relative(got: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    dense = dense.to(got.dtype)
    return ((got - dense) ** 2).sum() / ((dense**2).sum() + _EPS)


def _measure(
    distill: DistillSpec,
    student: Any,
    teacher: Any,
    tap: Tapped,
    args: Sequence[torch.Tensor],
    batch: int,
) -> dict[str, float]:
    """The loss and the mean cosine of the first output to the dense one, per sample, over
    every calibration sample (the ones trained on: the report's fidelity blocks say more)."""
    losses, cosines = [], []
    samples = int(args[0].shape[0])
    with torch.no_grad():
        for start in range(0, samples, batch):
            part = [a[start : start + batch] for a in args]
            got, dense = tap(student, part), tap(teacher, part)
            losses.append(float(_loss(distill, got, dense)) * part[0].shape[0])
            s, t = got[0].reshape(part[0].shape[0], -1), dense[0].reshape(part[0].shape[0], -1)
            cosines.append(torch.nn.functional.cosine_similarity(s.double(), t.double(), dim=1))
    return {
        "loss": round(sum(losses) / samples, 8),
        "cosine": round(float(torch.cat(cosines).mean()), 6),
    }
