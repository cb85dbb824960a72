"""What the engine passes between adapters, methods and masks: named weights and signatures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Dim = int | str
FloatArray = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class WeightTensor:
    """One prunable weight: ``values`` is writable and C-contiguous; pruning writes into it."""

    name: str
    op: str
    values: FloatArray

    @property
    def flat(self) -> FloatArray:
        return self.values.reshape(-1)

    @property
    def numel(self) -> int:
        return int(self.values.size)

    @property
    def shape(self) -> list[int]:
        return [int(d) for d in self.values.shape]


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of a model: ``shape`` is None when the model does not record it."""

    name: str
    dtype: str | None
    shape: list[Dim] | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": self.shape}


@dataclass(frozen=True)
class Signature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
