"""The refinement pass: layers in graph order, each one's inputs captured with the layers
before it already refined (the sequential scheme of SparseGPT, one forward in all through
``layer_sequence``), each refined against its dense weights on those inputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from pruning.calibration.capture import LayerInputs, layer_sequence
from pruning.calibration.dataset import CalibrationData
from pruning.calibration.geometry import LayerGeometry
from pruning.calibration.stats import gram
from pruning.quality_spec import RefineSpec
from pruning.refine.errors import relative
from pruning.refine.least_squares import least_squares
from pruning.refine.swaps import dsnot_swaps
from pruning.tensors import FloatArray, WeightTensor


class Refiner:
    """One per job; ``dense`` maps each layer to a copy of its weights before pruning."""

    def __init__(
        self,
        spec: RefineSpec,
        inputs: Callable[[], LayerInputs],
        data: Callable[[], CalibrationData],
    ) -> None:
        self.spec = spec
        self._inputs = inputs
        self._data = data

    def refine(
        self,
        tensors: Sequence[WeightTensor],
        dense: dict[str, FloatArray],
        nm: tuple[int, int] | None,
    ) -> dict[str, Any]:
        start = time.perf_counter()
        inputs = self._inputs()
        by_name = {t.name: t for t in tensors if t.name not in inputs.unscorable and t.numel}
        layers = []
        for names, captured in layer_sequence(inputs, list(by_name), self._data()):
            grams: dict[LayerGeometry, torch.Tensor] = {}  # q, k and v share one
            for name in names:
                geometry = inputs.geometry[name]
                if geometry not in grams:
                    grams[geometry] = gram(geometry.rows(x) for x in captured)
                matrix = geometry.matrix(by_name[name].values)
                w0 = geometry.matrix(dense[name])
                layers.append(self._layer(name, matrix, w0, grams[geometry], nm))
        return {
            "kind": self.spec.kind,
            **({"max_cycles": self.spec.max_cycles} if self.spec.kind == "dsnot" else {}),
            "update": "least_squares" if self.spec.solves else "none",
            "error": "relative layer output error ||W0 X - W X||^2 / ||W0 X||^2 on the "
            "calibration data, inputs from the refined layers before it",
            "layers": layers,
            "not_refined": [t.name for t in tensors if t.name in inputs.unscorable],
            "refine_s": round(time.perf_counter() - start, 4),
        }

    def _layer(
        self,
        name: str,
        matrix: FloatArray,
        dense: FloatArray,
        g: torch.Tensor,
        nm: tuple[int, int] | None,
    ) -> dict[str, Any]:
        w0 = torch.from_numpy(np.array(dense, np.float32))
        w = torch.from_numpy(np.array(matrix, np.float32))
        before = relative(w0, w, g)
        note: dict[str, Any] = {"name": name, "error_before": before}
        if self.spec.kind == "dsnot":
            w, note["swaps"] = dsnot_swaps(w0, w, g, self.spec.max_cycles, nm)
        if self.spec.solves:
            w = least_squares(w0, w, g)
        after = relative(w0, w, g)
        better = after <= before  # the ridge of the solve could, in principle, cost a little
        if better:
            matrix[...] = w.numpy().astype(matrix.dtype)
        note["error_after"] = after if better else before
        return note
