"""The learned-sparsity methods by the spec's method name."""

from __future__ import annotations

from pruning.training.learned.base import LearnedMethod
from pruning.training.learned.l0 import L0Method
from pruning.training.learned.movement import MovementMethod
from pruning.training.learned.soft_threshold import SoftThresholdMethod
from pruning.training.learned.variational_dropout import VariationalDropoutMethod

LEARNED: dict[str, type[LearnedMethod]] = {
    L0Method.name: L0Method,
    VariationalDropoutMethod.name: VariationalDropoutMethod,
    SoftThresholdMethod.name: SoftThresholdMethod,
    MovementMethod.name: MovementMethod,
}


def is_learned(name: str) -> bool:
    return name in LEARNED
