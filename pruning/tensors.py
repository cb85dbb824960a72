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
    """One prunable weight: ``values`` is writable and C-contiguous; pruning writes into it.

    ``node`` and ``op_type`` name the weight's first consumer as a user knows it: the ONNX
    node name (``/encoder/layer.0/attention/self/query/MatMul``) and op type, or the
    TorchScript module path and the ``aten::`` operator; initializer names such as
    ``onnx::MatMul_782`` say nothing about where a layer is."""

    name: str
    op: str
    values: FloatArray
    node: str = ""
    op_type: str = ""

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
class SkippedTensor:
    """A weight left as it is, and why: nothing reads it, or the method cannot score it."""

    name: str
    node: str
    reason: str
    op_type: str = ""

    def to_json(self) -> dict[str, str]:
        return {"tensor": self.name, "node": self.node, "reason": self.reason}


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
