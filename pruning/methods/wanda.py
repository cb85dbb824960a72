"""Wanda (Sun, Liu, Bair & Kolter 2023, "A Simple and Effective Pruning Approach for Large
Language Models", eq. 1): the score of weight w_ij is |w_ij| * ||X_j||_2, the norm of input
feature j over all calibration tokens, and weights are compared within each output row
(sec. 3, "per output" comparison group). Every row, so every layer, is pruned to the layer's
fraction: ``scope`` does not apply (a global threshold would undo the per-row comparison)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from pruning.calibration.capture import layer_inputs
from pruning.calibration.geometry import split_rows
from pruning.calibration.stats import column_sq_norms
from pruning.methods.calibrated import CalibratedJob, CalibratedMethod
from pruning.tensors import FloatArray


class WandaMethod(CalibratedMethod):
    name: ClassVar[str] = "wanda"

    def prune(self, job: CalibratedJob) -> dict[str, Any]:
        start = time.perf_counter()
        inputs = layer_inputs(job.model, job.input_names)
        norms = column_sq_norms(inputs, [t.name for t in job.tensors], job.data)
        calibration_s = time.perf_counter() - start
        for index, tensor in enumerate(job.tensors):
            matrix = inputs.geometry[tensor.name].matrix(tensor.values)
            scores = np.abs(matrix) * np.sqrt(norms[tensor.name].numpy())[None, :]
            prune_rows(matrix, scores, job.fraction(tensor))
            job.progress((index + 1) / len(job.tensors))
        return {"calibration_s": round(calibration_s, 4), "scope_applied": "per output row"}


def prune_rows(matrix: FloatArray, scores: Any, fraction: float) -> None:
    """Zero the lowest-scoring weights of each row, exactly round(fraction * size) in all."""
    rows, cols = matrix.shape
    counts = split_rows(rows, cols, fraction)
    order = np.argsort(scores, axis=1, kind="stable")
    prune = np.arange(cols)[None, :] < counts[:, None]
    mask = np.zeros((rows, cols), np.bool_)
    np.put_along_axis(mask, order, prune, axis=1)
    matrix[mask] = 0
