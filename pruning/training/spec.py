"""The retraining parts of the PruneSpec (issue 4) as the engine reads them: ``schedule``,
``retrain``, ``evaluation``. The contract (``api_schemas.spec``) validates them and holds their
defaults; ``retrain`` and ``evaluation`` are its objects, ``schedule`` a view of every kind's
parameters built from it (``schedule_view``) that restates no default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api_schemas import spec as contract
from pruning.spec_values import choices, default_of

SCHEDULES = tuple(
    member.model_fields["kind"].default
    for member in (contract.OneShotSchedule, contract.IterativeSchedule, contract.GradualSchedule)
)
OPTIMIZERS = choices(contract.RetrainSpec.model_fields["optimizer"].annotation)
LOSSES = choices(contract.RetrainSpec.model_fields["loss"].annotation)
LR_SCHEDULES = choices(contract.RetrainSpec.model_fields["lr_schedule"].annotation)
METRICS = choices(contract.EvaluationSpec.model_fields["metric"].annotation)

_I, _G = contract.IterativeSchedule, contract.GradualSchedule


@dataclass(frozen=True)
class ScheduleSpec:
    """Every schedule's parameters in one view; those of other kinds hold the contract's
    defaults and are not read."""

    kind: str = default_of(contract.OneShotSchedule, "kind")
    rounds: int = default_of(_I, "rounds")  # iterative
    steps: int = default_of(_G, "steps")  # gradual: pruning events after the first
    exponent: float = default_of(_G, "exponent")  # gradual: 3 is Zhu & Gupta's cubic
    initial_sparsity: float = default_of(_G, "initial_sparsity")
    pruning_fraction: float = default_of(_G, "pruning_fraction")  # gradual: share of training

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


# Retraining and evaluation are read as the contract holds them: a field added there (with its
# default) reaches the engine with nothing restated here.
RetrainSpec = contract.RetrainSpec
EvaluationSpec = contract.EvaluationSpec
DistillSpec = contract.DistillSpec


def schedule_view(
    c: contract.OneShotSchedule | contract.IterativeSchedule | contract.GradualSchedule,
) -> ScheduleSpec:
    return ScheduleSpec(**c.model_dump())
