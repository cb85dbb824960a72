"""SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately
Pruned in One-Shot", Algorithm 1): layerwise Optimal Brain Surgeon with weight update. For
each layer, H = 2 X X^T / n from its calibration inputs, dampened; the upper Cholesky factor
of H^-1 gives, column by column, the OBS error w_q / [H^-1]_qq and its update of the columns
not yet processed (eq. 3-4, the L-OBS/OBC family). Masks are chosen per block of columns
from w^2 / [H^-1]_qq^2 (adaptive mask selection, sec. 3.3). Layers are processed in order and
each one's H is built from the inputs produced by the already-pruned layers before it."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch

from pruning.calibration.capture import layer_inputs
from pruning.calibration.geometry import split_rows
from pruning.calibration.stats import input_hessian
from pruning.errors import InvalidSpec
from pruning.methods.calibrated import CalibratedJob, CalibratedMethod


class SparseGPTMethod(CalibratedMethod):
    name: ClassVar[str] = "sparsegpt"
    OPTIONS: ClassVar[dict[str, type]] = {"blocksize": int, "percdamp": float}

    def __init__(self, blocksize: int = 128, percdamp: float = 0.01) -> None:
        if blocksize < 1:
            raise InvalidSpec("method.blocksize must be >= 1", field="method.blocksize")
        if not 0.0 < percdamp <= 1.0:
            raise InvalidSpec("method.percdamp must be in (0, 1]", field="method.percdamp")
        self.blocksize = blocksize
        self.percdamp = float(percdamp)

    def prune(self, job: CalibratedJob) -> dict[str, Any]:
        inputs = layer_inputs(job.model, job.input_names)
        calibration_s = solve_s = 0.0
        for index, tensor in enumerate(job.tensors):
            start = time.perf_counter()
            hessian = input_hessian(inputs, tensor.name, job.data)
            middle = time.perf_counter()
            matrix = inputs.geometry[tensor.name].matrix(tensor.values)
            weights = torch.from_numpy(np.array(matrix, np.float32))
            pruned = sparsegpt_layer(
                weights, hessian, job.fraction(tensor), self.blocksize, self.percdamp
            )
            matrix[...] = pruned.numpy().astype(matrix.dtype)
            calibration_s += middle - start
            solve_s += time.perf_counter() - middle
            job.progress((index + 1) / len(job.tensors))
        return {
            "calibration_s": round(calibration_s, 4),
            "solve_s": round(solve_s, 4),
            "scope_applied": "layerwise",
            "blocksize": self.blocksize,
            "percdamp": self.percdamp,
        }


def sparsegpt_layer(
    weights: torch.Tensor, hessian: torch.Tensor, fraction: float, blocksize: int, percdamp: float
) -> torch.Tensor:
    """The pruned ``[rows, cols]`` weights: exactly round(fraction * size) zeros."""
    # Work on W^T, so that each input column the algorithm visits is one contiguous row.
    wt = weights.T.float().contiguous()
    h = hessian.clone().float()
    dead = torch.diag(h) == 0  # inputs that are always zero carry no information
    h[dead, dead] = 1.0
    wt[dead, :] = 0.0
    h.diagonal().add_(percdamp * torch.mean(torch.diag(h)))
    hinv = _upper_cholesky_of_inverse(h)
    cols, rows = wt.shape
    budget = int(split_rows(1, rows * cols, fraction)[0])  # the whole layer's zeros ...
    ends = np.rint(budget * np.minimum(np.arange(0, cols + blocksize, blocksize), cols) / cols)
    for number, i1 in enumerate(range(0, cols, blocksize)):
        i2 = min(i1 + blocksize, cols)
        k = int(ends[number + 1] - ends[number])  # ... spread over blocks by their width
        errors = _prune_block(wt[i1:i2], hinv[i1:i2, i1:i2], k)
        wt[i2:] -= hinv[i1:i2, i2:].T @ errors  # lazy batch update (sec. 3.4)
    return wt.T


def _upper_cholesky_of_inverse(h: torch.Tensor) -> torch.Tensor:
    try:
        lower = torch.linalg.cholesky(h)
    except RuntimeError:  # LinAlgError: rank-deficient despite dampening, dampen harder
        h = h + torch.eye(h.shape[0]) * 0.1 * torch.mean(torch.diag(h))
        lower = torch.linalg.cholesky(h)
    inverse = torch.cholesky_inverse(lower)
    upper: torch.Tensor = torch.linalg.cholesky(inverse, upper=True)
    return upper


def _prune_block(block: torch.Tensor, hinv1: torch.Tensor, k: int) -> torch.Tensor:
    """OBS over one block of input columns (rows of ``block``, a view of W^T, updated in
    place): choose k weights, zero them, move their error onto the block's later columns;
    return the scaled errors ``(w - q) / [H^-1]_qq`` for the columns after the block."""
    saliency = block.pow(2) / torch.diag(hinv1).pow(2)[:, None]  # OBS eq. 3, w^2 / [H^-1]^2
    mask = torch.zeros(block.numel(), dtype=torch.bool)
    if k:
        mask[torch.topk(saliency.flatten(), k, largest=False).indices] = True
    mask = mask.reshape(block.shape)
    errors = torch.empty_like(block)
    for i in range(block.shape[0]):
        q = block[i].masked_fill(mask[i], 0.0)
        torch.div(block[i] - q, hinv1[i, i], out=errors[i])
        block[i:].addr_(hinv1[i, i:], errors[i], alpha=-1.0)  # OBS eq. 4, rank-1 update
        block[i] = q
    return errors
