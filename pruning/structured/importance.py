"""How important each channel is: the L1 or L2 norm of the weights that produce it, summed over
the layers of its group (Li et al. 2017, "Pruning Filters for Efficient ConvNets", sec. 3.1:
the sum of absolute kernel weights; L2 as in He et al. 2018, "Soft Filter Pruning"), taken on
the filters with a following BatchNorm folded in. A loss-based ranking (``taylor``) arrives as
precomputed scores per weight and output channel, summed over the group the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from pruning.structured.dependency import Source
from pruning.structured.graph import OnnxGraph, attribute

FloatArray = npt.NDArray[np.float64]
ChannelScores = Mapping[str, npt.NDArray[Any]]  # weight name -> one score per output channel
Importance = str | ChannelScores  # "l1" / "l2", or precomputed scores


def channel_rows(graph: OnnxGraph, source: Source) -> FloatArray:
    """The source's weights as one row per output channel."""
    node = graph.nodes[source.node]
    weight = graph.constant(source.weight)
    assert weight is not None
    values = np.asarray(weight, np.float64)
    if node.op_type == "Conv" or (node.op_type == "Gemm" and attribute(node, "transB", 0)):
        return values.reshape(values.shape[0], -1)
    return values.T.reshape(values.shape[1], -1)  # Gemm B / MatMul B are (in, out)


def folded_rows(graph: OnnxGraph, source: Source) -> FloatArray:
    """Rows with the BatchNorm after the layer folded in (gamma / sqrt(var + eps) per channel):
    BatchNorm rescales every channel, so the raw filter norm alone misranks them."""
    rows = channel_rows(graph, source)
    if source.norm is None:
        return rows
    node = graph.nodes[source.norm]
    gamma, var = graph.constant(node.input[1]), graph.constant(node.input[4])
    assert gamma is not None and var is not None  # the BatchNorm rule checked they are
    eps = float(attribute(node, "epsilon", 1e-5))
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    return rows * scale[:, None]


def group_importance(graph: OnnxGraph, sources: list[Source], importance: Importance) -> FloatArray:
    total = np.zeros(sources[0].channels, np.float64)
    for source in sources:
        rows = folded_rows(graph, source) if isinstance(importance, str) else None
        total += channel_scores(importance, source.weight, rows)
    return total


def channel_scores(importance: Importance, name: str, rows: npt.NDArray[Any] | None) -> FloatArray:
    """One score per output channel of weight ``name``: the norm of its ``rows`` (one row per
    channel), or the precomputed scores."""
    if not isinstance(importance, str):
        return np.asarray(importance[name], np.float64)
    assert rows is not None
    values = np.asarray(rows, np.float64)
    norms = np.abs(values).sum(axis=1) if importance == "l1" else np.sqrt((values**2).sum(axis=1))
    return np.asarray(norms, np.float64)


def channels_to_keep(scores: FloatArray, sparsity: float) -> npt.NDArray[np.int64]:
    """Indices of the round((1 - s) * C) best channels (at least one), in channel order; ties
    keep the earlier channel."""
    count = len(scores)
    keep = max(1, count - round(sparsity * count))
    order = np.argsort(-scores, kind="stable")[:keep]
    return np.sort(order).astype(np.int64)
