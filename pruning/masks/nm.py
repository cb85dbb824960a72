"""N:M masks: exactly ``n`` zeros in every group of ``m`` consecutive weights along the input
dimension, the lowest-scoring ones of each group (Mishra et al. 2021, "Accelerating Sparse
Deep Neural Networks": 2:4 is the pattern NVIDIA's sparse tensor cores skip in hardware).

Convention (the API docs state it too): a weight is seen as a matrix of one row per output
and one column per input connection, and groups run along the row:
- ``rows``: the input dimension is everything after axis 0, flattened (Conv ``out x in*kh*kw``,
  Gemm with ``transB=1`` / torch Linear ``out x in``);
- ``columns``: the input dimension is axis 0 (MatMul's constant B and Gemm's B with
  ``transB=0`` are ``in x out``), so groups run down each column.

Only scores are needed, so any ``Scorer`` works; ties within a group go to the earlier weight.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pruning.methods.base import Scorer
from pruning.tensors import FloatArray, WeightTensor

# cuSPARSELt / CUTLASS need 2:4 (fp16, bf16, int8) with the sparse matrix at least 32 rows
# and a multiple of 64 columns for fp16 (torch.sparse.SparseSemiStructuredTensor constraints).
TENSOR_CORE_PATTERN = (2, 4)
TENSOR_CORE_ROWS = 32
TENSOR_CORE_COLS = 64


@dataclass(frozen=True)
class NMLayer:
    """What N:M did to one tensor: pruned, or left dense with ``reason``."""

    name: str
    rows: int
    inputs: int
    pruned: bool
    reason: str | None = None

    def tensor_core_ready(self, n: int, m: int) -> bool:
        return (
            self.pruned
            and (n, m) == TENSOR_CORE_PATTERN
            and self.rows % TENSOR_CORE_ROWS == 0
            and self.inputs % TENSOR_CORE_COLS == 0
        )


def prune_nm(
    tensors: Sequence[WeightTensor],
    scorer: Scorer,
    n: int,
    m: int,
    columns: Collection[str] = (),
) -> list[NMLayer]:
    """Score every tensor first (scores see unpruned weights), then write the zeros."""
    masks = [nm_mask(t, scorer, n, m, t.name in columns) for t in tensors]
    layers = []
    for tensor, (mask, layer) in zip(tensors, masks, strict=True):
        if mask is not None:
            tensor.values[mask] = 0
        layers.append(layer)
    return layers


def nm_mask(
    tensor: WeightTensor, scorer: Scorer, n: int, m: int, columns: bool = False
) -> tuple[np.ndarray[Any, np.dtype[np.bool_]] | None, NMLayer]:
    """The boolean mask (True = pruned) in the tensor's shape, or None when it cannot be N:M."""
    rows, inputs = _matrix_shape(tensor.values.shape, columns)
    if inputs % m:
        reason = f"input dimension {inputs} is not a multiple of m={m}; left dense"
        return None, NMLayer(tensor.name, rows, inputs, False, reason)
    scores: FloatArray = np.empty(tensor.numel, scorer.score_dtype(tensor))
    scorer.score(tensor, 0, scores)
    flat = nm_matrix_mask(_as_matrix(scores.reshape(tensor.values.shape), columns), n, m)
    shaped = flat.T if columns else flat
    return shaped.reshape(tensor.values.shape), NMLayer(tensor.name, rows, inputs, True)


def nm_matrix_mask(scores: Any, n: int, m: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True at the ``n`` lowest scores of every ``m`` consecutive columns of each row of a
    ``[outputs, inputs]`` score matrix (``inputs`` a multiple of ``m``)."""
    rows, inputs = scores.shape
    groups = np.asarray(scores).reshape(rows, inputs // m, m)
    # A stable sort keeps ties in position order, so masks are deterministic.
    lowest = np.argsort(groups, axis=-1, kind="stable")[..., :n]
    mask = np.zeros(groups.shape, np.bool_)
    np.put_along_axis(mask, lowest, True, axis=-1)
    return mask.reshape(rows, inputs)


def _matrix_shape(shape: tuple[int, ...], columns: bool) -> tuple[int, int]:
    if columns:
        return int(np.prod(shape[1:], dtype=np.int64)), int(shape[0])
    return int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))


def _as_matrix(values: FloatArray, columns: bool) -> FloatArray:
    """Rows = outputs, columns = inputs; ``columns`` tensors are stored ``in x out``."""
    if columns:
        return np.ascontiguousarray(values.reshape(values.shape[0], -1).T)
    return values.reshape(values.shape[0], -1)
