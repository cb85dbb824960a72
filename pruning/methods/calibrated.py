"""Methods that need calibration data: they see the model and its layer inputs, not only a
weight tensor, so they are not ``Scorer``s. Each one prunes ``job.tensors`` in place (their
``values`` are what the adapter saves) and returns notes for the report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pruning.calibration.dataset import CalibrationData
from pruning.models.base import ModelAdapter
from pruning.tensors import WeightTensor


@dataclass(frozen=True)
class CalibratedJob:
    model: ModelAdapter
    tensors: list[WeightTensor]  # in graph order: earlier layers first
    sparsity: float
    scope: str
    overrides: dict[str, float]
    data: CalibrationData
    input_names: list[str]
    progress: Callable[[float], None]

    def fraction(self, tensor: WeightTensor) -> float:
        return self.overrides.get(tensor.name, self.sparsity)


class CalibratedMethod(ABC):
    name: ClassVar[str]
    OPTIONS: ClassVar[dict[str, type]] = {}

    @abstractmethod
    def prune(self, job: CalibratedJob) -> dict[str, Any]:
        """Prune ``job.tensors`` in place; return notes for the report's calibration block."""
