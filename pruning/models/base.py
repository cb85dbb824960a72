"""One interface over model formats: named prunable weights, a signature, a way to run, and
``save()`` in the model's own format. Each format is one adapter module."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from pruning.errors import InvalidModel
from pruning.input_ranges import InputRange
from pruning.tensors import Signature, SkippedTensor, WeightTensor

Array = npt.NDArray[Any]


class Runner(Protocol):
    """A loaded model that maps named input arrays to its output arrays."""

    def run(self, feeds: Mapping[str, Array]) -> list[Array]: ...

    def close(self) -> None: ...


class ModelAdapter(ABC):
    format: ClassVar[str]
    suffix: ClassVar[str]
    runtime: ClassVar[str]
    exact_shapes: ClassVar[bool]  # recorded input shapes are constraints, not examples

    signature: Signature
    opset: int | None = None
    # The file the runtime opens for the upload (inside an archive: the unpacked model file),
    # and the archive kind its pruned copy goes back into, if it came in one.
    source: Path | None = None
    packaging: str | None = None

    @classmethod
    @abstractmethod
    def load(cls, path: Path, probe_runtime: bool = True) -> ModelAdapter:
        """Open and validate; raise InvalidModel / UnsupportedModel with a fix-it message.
        ``probe_runtime``: also open it in the runtime that will time it (an upload's check);
        a job on a validated upload opens its runtime later anyway."""

    @abstractmethod
    def parameter_count(self) -> int:
        """Elements of all floating-point parameters (weights, biases, norms, embeddings)."""

    @abstractmethod
    def prunable_info(self) -> list[dict[str, Any]]:
        """``{"name", "shape", "op", "node"}`` for each prunable tensor, without copying
        weights; ``node`` is what layer globs may match besides the name."""

    @abstractmethod
    def prunable(self) -> list[WeightTensor]:
        """The prunable weights as writable arrays; ``save()`` writes what they hold."""

    def input_ranges(self) -> dict[str, InputRange]:
        """What values each integer or bool input may take, from how the graph uses it;
        inputs left out get no constraint."""
        return {}

    def skipped(self) -> list[SkippedTensor]:
        """Weights of prunable layers that nothing the model computes reads, with the reason.
        They are left as they are: zeroing dead weight changes no output, so a sparsity
        figure counting them would promise a gain that is not there."""
        return []

    @abstractmethod
    def save(self, out_dir: Path) -> Path:
        """Write the model, with the current weights, into ``out_dir``; return its path."""

    @classmethod
    @abstractmethod
    def iter_parameters(cls, path: Path) -> Iterator[tuple[str, Array]]:
        """Every floating-point parameter of a saved model, one at a time (for reports)."""

    @classmethod
    @abstractmethod
    def open_runner(cls, path: Path, threads: int, input_names: list[str]) -> Runner:
        """Load ``path`` for inference with ``threads`` intra-op threads."""


def require_finite(tensors: list[WeightTensor]) -> None:
    """NaN or infinite weights have no magnitude order; refuse them up front."""
    step = 1 << 20
    for t in tensors:
        flat = t.flat
        for start in range(0, flat.size, step):
            if not np.isfinite(flat[start : start + step]).all():
                raise InvalidModel(
                    f"weight {t.name!r} contains NaN or infinite values; "
                    "fix the model (e.g. re-export a checkpoint from before training diverged)"
                )
