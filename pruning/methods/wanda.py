"""Wanda (Sun, Liu, Bair & Kolter 2023, "A Simple and Effective Pruning Approach for Large
Language Models", eq. 1): the score of weight w_ij is |w_ij| * ||X_j||_2, the norm of input
feature j over all calibration tokens, and weights are compared within each output row
(sec. 3, "per output" comparison group). Every row, so every layer, is pruned to the layer's
fraction: ``scope`` does not apply (a global threshold would undo the per-row comparison).
With n:m granularity the comparison group shrinks to every m consecutive inputs of a row,
the n lowest scores pruned (Wanda sec. 3, "structured N:M sparsity", 2:4 and 4:8)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from pruning.calibration.capture import layer_inputs
from pruning.calibration.geometry import split_rows
from pruning.calibration.stats import column_sq_norms
from pruning.device import resolve_device
from pruning.masks.nm import NMLayer, nm_matrix_mask
from pruning.methods.calibrated import (
    CALIBRATED,
    CalibratedJob,
    CalibratedMethod,
    nm_layer,
    nm_notes,
)
from pruning.tensors import FloatArray


@CALIBRATED.register
class WandaMethod(CalibratedMethod):
    name: ClassVar[str] = "wanda"
    reads_layer_inputs: ClassVar[bool] = True

    def prune(self, job: CalibratedJob) -> dict[str, Any]:
        start = time.perf_counter()
        inputs = layer_inputs(job.model, job.input_names, [t.name for t in job.tensors])
        device = resolve_device(job.device)
        names = [t.name for t in job.tensors]
        norms = column_sq_norms(inputs, names, job.data, device, job.dense_outputs)
        calibration_s = time.perf_counter() - start
        layers: list[NMLayer] = []
        for index, tensor in enumerate(job.tensors):
            matrix = inputs.geometry[tensor.name].matrix(tensor.values)
            scores = np.abs(matrix) * np.sqrt(norms[tensor.name].cpu().numpy())[None, :]
            if job.nm is None:
                prune_rows(matrix, scores, job.fraction(tensor))
            else:
                layers.append(prune_groups(tensor.name, matrix, scores, *job.nm))
            job.progress((index + 1) / len(job.tensors), tensor.name)
        notes = {"scope_applied": "per output row"} if job.nm is None else nm_notes(job.nm, layers)
        return {"calibration_s": round(calibration_s, 4), **notes}


def prune_rows(matrix: FloatArray, scores: Any, fraction: float) -> None:
    """Zero the lowest-scoring weights of each row, exactly round(fraction * size) in all."""
    rows, cols = matrix.shape
    matrix[lowest_per_row(scores, split_rows(rows, cols, fraction))] = 0


def lowest_per_row(scores: Any, counts: Any) -> Any:
    """A mask of the ``counts[r]`` lowest scores of each row ``r``, ties taken in column
    order: exactly the first ``counts[r]`` of a stable ascending sort of the row, found by a
    selection (linear time) where the sort took twice as long on the encoder's layers. The
    rows' counts differ by at most one, so one partition finds every row's threshold."""
    rows, cols = scores.shape
    if not np.isfinite(scores).all():  # NaN has no place in a selection: the sort's order
        order = np.argsort(scores, axis=1, kind="stable")
        mask = np.zeros((rows, cols), np.bool_)
        np.put_along_axis(mask, order, np.arange(cols)[None, :] < counts[:, None], axis=1)
        return mask
    last = np.clip(counts - 1, 0, cols - 1)  # the position of each row's threshold
    threshold = np.partition(scores, np.unique(last), axis=1)[np.arange(rows), last]
    threshold = np.where(counts > 0, threshold, -np.inf)[:, None]
    below = scores < threshold
    ties = scores == threshold
    ties &= np.cumsum(ties, axis=1) <= (counts - below.sum(axis=1))[:, None]
    return below | ties


def prune_groups(name: str, matrix: FloatArray, scores: Any, n: int, m: int) -> NMLayer:
    """Zero the n lowest-scoring weights of every m consecutive inputs of each row."""
    layer = nm_layer(name, matrix.shape[0], matrix.shape[1], m)
    if layer.pruned:
        matrix[nm_matrix_mask(scores, n, m)] = 0
    return layer
