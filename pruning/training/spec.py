"""The retraining parts of the PruneSpec (issue 4): ``schedule``, ``retrain``, ``evaluation``,
parsed from JSON into frozen dataclasses; every bad value raises naming its field."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pruning.errors import InvalidSpec
from pruning.spec_values import choice_at, object_at

SCHEDULES = ("one_shot", "iterative", "gradual")
OPTIMIZERS = ("adam", "sgd")
LOSSES = ("cross_entropy+distill", "cross_entropy", "mse", "distill")  # the default first
LR_SCHEDULES = ("cosine", "constant")
METRICS = ("accuracy", "mse")


@dataclass(frozen=True)
class ScheduleSpec:
    kind: str = "one_shot"
    rounds: int = 3  # iterative
    steps: int = 10  # gradual: pruning events after the first
    exponent: float = 3.0  # gradual: 3 is Zhu & Gupta's cubic
    initial_sparsity: float = 0.0
    pruning_fraction: float = 0.75  # gradual: share of training over which sparsity ramps

    def to_json(self) -> dict[str, Any]:
        if self.kind == "iterative":
            return {"kind": self.kind, "rounds": self.rounds}
        if self.kind == "gradual":
            return {
                "kind": self.kind,
                "steps": self.steps,
                "exponent": self.exponent,
                "initial_sparsity": self.initial_sparsity,
                "pruning_fraction": self.pruning_fraction,
            }
        return {"kind": self.kind}


@dataclass(frozen=True)
class RetrainSpec:
    dataset_id: str
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    # The recipe of issue 15: warmup then cosine decay, and the dense model's outputs
    # distilled beside the labels; "constant" and "cross_entropy" are the earlier recipe.
    loss: str = "cross_entropy+distill"
    temperature: float = 2.0
    validation_split: float = 0.0
    regrow: bool = False
    max_samples: int | None = None
    seed: int = 0
    lr_schedule: str = "cosine"
    warmup: float = 0.05  # share of the optimizer steps over which lr rises linearly from 0
    alpha: float = 0.5  # weight of the distillation term in "cross_entropy+distill"


@dataclass(frozen=True)
class DistillSpec:
    """Masks-fixed distillation after a one-shot pass, on the calibration data (no labels):
    each pruned layer's output matched to the dense model's (weight ``layerwise``) plus the
    model's first output (weight ``output``), both as squared error relative to the dense."""

    steps: int = 200
    lr: float = 3e-4
    batch_size: int = 16
    layerwise: float = 1.0
    output: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class EvaluationSpec:
    dataset_id: str
    metric: str = "accuracy"
    samples: int | None = None


def parse_schedule(raw: Any, sparsity: float) -> ScheduleSpec:
    obj = object_at(raw, "schedule")
    kind = choice_at(obj.get("kind"), SCHEDULES, "schedule.kind")
    allowed = {"kind", *_SCHEDULE_FIELDS[kind]}
    _refuse_extra(obj, allowed, "schedule")
    d = ScheduleSpec()
    initial = _within(
        obj.get("initial_sparsity", d.initial_sparsity),
        "schedule.initial_sparsity",
        f"[0, sparsity={sparsity:g}]",
        lambda x: 0.0 <= x <= sparsity,
    )
    fraction = _within(
        obj.get("pruning_fraction", d.pruning_fraction),
        "schedule.pruning_fraction",
        "(0, 1]",
        lambda x: 0.0 < x <= 1.0,
    )
    exponent = _within(
        obj.get("exponent", d.exponent), "schedule.exponent", "[1, 10]", lambda x: 1 <= x <= 10
    )
    return ScheduleSpec(
        kind=kind,
        rounds=_int(obj.get("rounds", d.rounds), "schedule.rounds", 1, 100),
        steps=_int(obj.get("steps", d.steps), "schedule.steps", 1, 1000),
        exponent=exponent,
        initial_sparsity=initial,
        pruning_fraction=fraction,
    )


_SCHEDULE_FIELDS: dict[str, tuple[str, ...]] = {
    "one_shot": (),
    "iterative": ("rounds",),
    "gradual": ("steps", "exponent", "initial_sparsity", "pruning_fraction"),
}


def parse_retrain(raw: Any) -> RetrainSpec | None:
    if raw is None:
        return None
    obj = object_at(raw, "retrain")
    _refuse_extra(obj, set(RetrainSpec.__dataclass_fields__), "retrain")
    d = RetrainSpec("")
    lr = _within(obj.get("lr", d.lr), "retrain.lr", "(0, 10]", lambda x: 0 < x <= 10)
    temperature = _within(
        obj.get("temperature", d.temperature),
        "retrain.temperature",
        "(0, 100]",
        lambda x: 0 < x <= 100,
    )
    split = _within(
        obj.get("validation_split", d.validation_split),
        "retrain.validation_split",
        "[0, 0.5]",
        lambda x: 0 <= x <= 0.5,
    )
    regrow = obj.get("regrow", d.regrow)
    if not isinstance(regrow, bool):
        raise InvalidSpec(
            f"retrain.regrow must be true or false, got {regrow!r}", field="retrain.regrow"
        )
    max_samples = obj.get("max_samples")
    return RetrainSpec(
        dataset_id=_dataset_id(obj.get("dataset_id"), "retrain.dataset_id"),
        epochs=_int(obj.get("epochs", d.epochs), "retrain.epochs", 1, 1000),
        lr=lr,
        batch_size=_int(obj.get("batch_size", d.batch_size), "retrain.batch_size", 1, 4096),
        optimizer=choice_at(obj.get("optimizer", d.optimizer), OPTIMIZERS, "retrain.optimizer"),
        momentum=_unit(obj.get("momentum", d.momentum), "retrain.momentum"),
        weight_decay=_unit(obj.get("weight_decay", d.weight_decay), "retrain.weight_decay"),
        loss=choice_at(obj.get("loss", d.loss), LOSSES, "retrain.loss"),
        temperature=temperature,
        validation_split=split,
        regrow=regrow,
        max_samples=None
        if max_samples is None
        else _int(max_samples, "retrain.max_samples", 1, 2**62),
        seed=_int(obj.get("seed", d.seed), "retrain.seed", 0, 2**63 - 1),
        lr_schedule=choice_at(
            obj.get("lr_schedule", d.lr_schedule), LR_SCHEDULES, "retrain.lr_schedule"
        ),
        warmup=_within(
            obj.get("warmup", d.warmup), "retrain.warmup", "[0, 0.5]", lambda x: 0 <= x <= 0.5
        ),
        alpha=_within(obj.get("alpha", d.alpha), "retrain.alpha", "[0, 1]", lambda x: 0 <= x <= 1),
    )


def parse_distill(raw: Any) -> DistillSpec | None:
    if raw is None:
        return None
    obj = object_at(raw, "distill")
    _refuse_extra(obj, set(DistillSpec.__dataclass_fields__), "distill")
    d = DistillSpec()
    weights = {
        key: _within(obj.get(key, getattr(d, key)), f"distill.{key}", "[0, 1e6]", _weight)
        for key in ("layerwise", "output")
    }
    if not any(weights.values()):
        raise InvalidSpec(
            "distill.layerwise and distill.output are both 0: nothing would be distilled",
            field="distill.output",
        )
    return DistillSpec(
        steps=_int(obj.get("steps", d.steps), "distill.steps", 1, 100_000),
        lr=_within(obj.get("lr", d.lr), "distill.lr", "(0, 1]", lambda x: 0 < x <= 1),
        batch_size=_int(obj.get("batch_size", d.batch_size), "distill.batch_size", 1, 4096),
        seed=_int(obj.get("seed", d.seed), "distill.seed", 0, 2**63 - 1),
        **weights,
    )


def _weight(x: float) -> bool:
    return 0 <= x <= 1e6


def parse_evaluation(raw: Any) -> EvaluationSpec | None:
    if raw is None:
        return None
    obj = object_at(raw, "evaluation")
    _refuse_extra(obj, {"dataset_id", "metric", "samples"}, "evaluation")
    samples = obj.get("samples")
    return EvaluationSpec(
        dataset_id=_dataset_id(obj.get("dataset_id"), "evaluation.dataset_id"),
        metric=choice_at(obj.get("metric", "accuracy"), METRICS, "evaluation.metric"),
        samples=None if samples is None else _int(samples, "evaluation.samples", 1, 2**62),
    )


def check_schedule_needs(schedule: ScheduleSpec, retrain: RetrainSpec | None) -> None:
    """Iterative and gradual pruning interleave pruning with training: both need ``retrain``;
    iterative gives every round at least one epoch."""
    if schedule.kind == "one_shot":
        return
    if retrain is None:
        raise InvalidSpec(
            f"schedule {schedule.kind!r} prunes between training epochs, so it needs "
            '"retrain": {"dataset_id": "ds_...", "epochs": ...}; or use "one_shot"',
            field="retrain",
        )
    if schedule.kind == "iterative" and retrain.epochs < schedule.rounds:
        raise InvalidSpec(
            f"iterative pruning retrains after each of its {schedule.rounds} rounds: "
            f"retrain.epochs ({retrain.epochs}) must be at least schedule.rounds",
            field="retrain.epochs",
        )


def check_distill_fits(
    distill: DistillSpec | None,
    retrain: RetrainSpec | None,
    calibration: object,
    search: object,
    granularity: str,
) -> None:
    """Distillation follows one one-shot pass, on the calibration samples."""
    if distill is None:
        return
    problem = None
    if retrain is not None:
        problem = "applies to one-shot pruning without retrain (retrain has loss 'distill')"
    elif search is not None:
        problem = "cannot follow a sparsity search or sweep; prune to one sparsity"
    elif granularity == "channel":
        problem = "applies to per-weight pruning, not channels"
    elif calibration is None:
        problem = "trains on the calibration samples; set calibration"
    if problem is not None:
        raise InvalidSpec(f"distill {problem}", field="distill")


def _refuse_extra(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key, value in obj.items():
        if key not in allowed and value is not None:
            raise InvalidSpec(f"{where} has no field {key!r}", field=f"{where}.{key}")


def _dataset_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidSpec(f"{where} must be a dataset id such as 'ds_...'", field=where)
    return value


def _number(value: Any, where: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        raise InvalidSpec(f"{where} must be a finite number, got {value!r}", field=where)
    return float(value)


def _within(value: Any, where: str, interval: str, holds: Callable[[float], bool]) -> float:
    """A finite number for which ``holds``; ``interval`` says which, in the refusal."""
    number = _number(value, where)
    if not holds(number):
        raise InvalidSpec(f"{where} must be in {interval}, got {number:g}", field=where)
    return number


def _unit(value: Any, where: str) -> float:
    return _within(value, where, "[0, 1)", lambda x: 0 <= x < 1)


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidSpec(
            f"{where} must be an integer in [{low}, {high}], got {value!r}", field=where
        )
    return value
