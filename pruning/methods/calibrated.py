"""Methods that need calibration data: they see the model and its layer inputs, not only a
weight tensor, so they are not ``Scorer``s. Each one prunes ``job.tensors`` in place (their
``values`` are what the adapter saves) and returns notes for the report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pruning.calibration.dataset import CalibrationData
from pruning.calibration.dense_outputs import DenseOutputs
from pruning.masks.nm import NMLayer
from pruning.method_registry import MethodRegistry
from pruning.models.base import ModelAdapter
from pruning.tensors import WeightTensor


class LayerProgress(Protocol):
    """How far the method is, and the layer it has just calibrated (shown in job events)."""

    def __call__(self, fraction: float, layer: str | None = None) -> None: ...


@dataclass(frozen=True)
class CalibratedJob:
    model: ModelAdapter
    tensors: list[WeightTensor]  # in graph order: earlier layers first
    sparsity: float
    scope: str
    overrides: dict[str, float]
    data: CalibrationData
    input_names: list[str]
    progress: LayerProgress
    nm: tuple[int, int] | None = None  # (n, m) for granularity n:m, else unstructured
    nm_columns: frozenset[str] = frozenset()  # tensors stored [in, out] (see masks/nm.py)
    device: str = "cpu"  # where statistics and solves run: pruning.device.resolve_device
    # Filled by a method whose forward over the calibration batches runs the upload's
    # weights (Wanda's capture) with the model's first output; the engine's in-sample
    # fidelity then runs only the pruned artifact. Left empty by the others.
    dense_outputs: DenseOutputs | None = None

    def fraction(self, tensor: WeightTensor) -> float:
        return self.overrides.get(tensor.name, self.sparsity)


class CalibratedMethod(ABC):
    name: ClassVar[str]
    # Scores from each layer's captured inputs (calibration/capture.py): layers whose
    # inputs cannot be captured are skipped before the method runs.
    reads_layer_inputs: ClassVar[bool] = False

    @abstractmethod
    def prune(self, job: CalibratedJob) -> dict[str, Any]:
        """Prune ``job.tensors`` in place; return notes for the report's calibration block."""


# The calibrated methods by method name: each registers itself (``@CALIBRATED.register``).
CALIBRATED = MethodRegistry[CalibratedMethod](
    "calibrated", CalibratedMethod, "pruning.methods.CALIBRATED"
)


def nm_layer(name: str, rows: int, inputs: int, m: int) -> NMLayer:
    """Whether a ``[rows, inputs]`` weight can take n:m groups; if not, it is left dense."""
    if inputs % m:
        reason = f"input dimension {inputs} is not a multiple of m={m}; left dense"
        return NMLayer(name, rows, inputs, False, reason)
    return NMLayer(name, rows, inputs, True)


def nm_notes(nm: tuple[int, int], layers: Sequence[NMLayer]) -> dict[str, Any]:
    """The report's account of an n:m run: the pattern and every layer left dense, and why."""
    n, m = nm
    return {
        "scope_applied": f"{n}:{m}: n lowest of every m consecutive inputs of each output row",
        "nm": {
            "n": n,
            "m": m,
            "layers_left_dense": [
                {"name": layer.name, "reason": layer.reason} for layer in layers if not layer.pruned
            ],
            "sparse_tensor_core_layers": [
                layer.name for layer in layers if layer.tensor_core_ready(n, m)
            ],
        },
    }
