"""Optimal Brain Damage (LeCun, Denker & Solla 1989, eq. 5-6): with a second-order Taylor
expansion at a minimum and a diagonal Hessian, removing weight i raises the loss by
s_i = h_ii * w_i^2 / 2. The Hessian diagonal is estimated either by the empirical Fisher,
the mean of squared per-sample gradients (the Gauss-Newton approximation that holds near a
minimum of a log-likelihood), or by Hutchinson's estimator E[z * (H z)] with Rademacher z
(Hutchinson 1990; Yao et al. 2020, "PyHessian"), using Hessian-vector products. Saliencies
are then ordinary scores: ``scope`` and ``layers.overrides`` apply as for magnitude, and with
n:m granularity each group of m keeps its m - n most salient weights (``masks/nm.py``)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from pruning.calibration.gradients import differentiable
from pruning.calibration.losses import hessian_diagonal
from pruning.masks import prune_in_place
from pruning.masks.nm import prune_nm
from pruning.methods.base import IntArray, Scorer
from pruning.methods.calibrated import CALIBRATED, CalibratedJob, CalibratedMethod, nm_notes
from pruning.tensors import FloatArray, WeightTensor


@CALIBRATED.register
class ObdMethod(CalibratedMethod):
    name: ClassVar[str] = "obd"

    def __init__(self, *, hessian: str, damp: float) -> None:
        # The options as the contract validated them (shears_methods declares their bounds).
        self.hessian = hessian
        self.damp = float(damp)

    def prune(self, job: CalibratedJob) -> dict[str, Any]:
        start = time.perf_counter()
        model = differentiable(job.model, job.tensors, job.input_names)
        diagonal, notes = hessian_diagonal(model, job.data, job.input_names, self.hessian)
        saliency = {
            t.name: (
                0.5 * self._dampened(diagonal[t.name]) * np.square(t.values, dtype=np.float64)
            ).astype(np.float32)
            for t in job.tensors
        }
        calibration_s = time.perf_counter() - start
        job.progress(0.5)
        scorer = SaliencyScorer(saliency)
        if job.nm is None:
            prune_in_place(job.tensors, scorer, job.sparsity, job.scope, job.overrides)
        else:
            layers = prune_nm(job.tensors, scorer, *job.nm, job.nm_columns)
            notes = {**notes, **nm_notes(job.nm, layers)}
        job.progress(1.0)
        return {
            "calibration_s": round(calibration_s, 4),
            "hessian": self.hessian,
            "damp": self.damp,
            **notes,
        }

    def _dampened(self, diagonal: np.ndarray) -> np.ndarray:
        """h_ii + damp * mean(h) over the layer: Levenberg-Marquardt dampening, as WoodFisher
        (Singh & Alistarh 2020) dampens its Fisher and SparseGPT its H. Measured on the digits
        models (docs/benchmarks.md): 128 samples give a heavy-tailed, noisy diagonal, and
        undampened OBD lost to magnitude; the layer's mean curvature stays, so global scope
        still moves budget towards the layers whose loss is least sensitive."""
        return diagonal + self.damp * float(diagonal.mean())


class SaliencyScorer(Scorer):
    """Precomputed scores, one array per tensor (float32: selection streams over them)."""

    name: ClassVar[str] = "saliency"

    def __init__(self, scores: dict[str, FloatArray]) -> None:
        self.scores = scores

    def score_dtype(self, tensor: WeightTensor) -> np.dtype[Any]:
        return np.dtype(np.float32)

    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        out[...] = self.scores[tensor.name].reshape(-1)[start : start + out.size]
        return out

    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        return self.scores[tensor.name].reshape(-1)[positions]
