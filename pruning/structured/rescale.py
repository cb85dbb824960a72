"""Data-driven choice and reconstruction of kept heads and neurons (after Kwon et al. 2022,
"A Fast Post-Training Pruning Framework for Transformers", sec. 4.3: importance from
calibration data, then a least-squares fit of what is kept to the layer's dense output).

Each projection ``y = x @ W + b`` reads units (heads, neurons). On the calibration inputs:
- the importance of unit u is the output error of removing it alone,
  ``mean ||x_u @ W_u||^2``, divided by the layer's ``mean ||x @ W||^2`` so that layers compare;
- after the cut, ``[x_kept, 1] @ [W'; db]`` is fitted to the dense ``x @ W`` by ridge least
  squares: the kept rows absorb what the removed ones carried, the bias their mean.
Each projection is fitted, in graph order, on the inputs it gets once the layers before it are
cut, towards the dense model's output: the fit also repairs what earlier cuts changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from pruning.models.onnx_model import session_for
from pruning.structured.channels import IntArray
from pruning.structured.graph import OnnxGraph
from pruning.structured.units import Units

Array = npt.NDArray[Any]
Feeds = Mapping[str, Array]
RIDGE = 1e-3  # relative to the mean diagonal of x^T x: keeps the fit stable with few tokens


def collect(
    proto: onnx.ModelProto, tensors: Iterable[str], batches: Iterable[Feeds]
) -> dict[str, Array]:
    """Every tensor in ``tensors`` on the calibration batches, as [tokens, features] float64."""
    names = sorted(set(tensors))
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    known = {o.name for o in probe.graph.output}
    for name in names:
        if name not in known:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    session = session_for(probe.SerializeToString(), threads=1)
    parts: dict[str, list[Array]] = {n: [] for n in names}
    for feeds in batches:
        values = session.run(names, dict(feeds))
        for name, value in zip(names, values, strict=True):
            array = np.asarray(value, np.float64)
            parts[name].append(array.reshape(-1, array.shape[-1]))
    return {n: np.concatenate(v) for n, v in parts.items()}


def unit_scores(units: Units, x: Array, weight: Array) -> Array:
    """Output error of removing each unit alone, relative to the layer's output energy."""
    w = np.asarray(weight, np.float64)
    total = float(np.mean(np.sum((x @ w) ** 2, axis=1))) or 1.0
    scores = np.empty(units.count)
    for u in range(units.count):
        cols = slice(u * units.width, (u + 1) * units.width)
        scores[u] = float(np.mean(np.sum((x[:, cols] @ w[cols]) ** 2, axis=1))) / total
    return scores


def refit(
    graph: OnnxGraph, units: Units, x: Array, keep: IntArray, target: Array | None = None
) -> dict[str, float]:
    """Least-squares rescale of the projection reading ``units`` after only ``keep`` stay, to
    ``target`` (default: the dense ``x @ W``). Call before the rows are cut (reads the dense
    W); writes W (kept rows fitted, the others zero) and the bias."""
    weight = graph.constant(units.weight)
    assert weight is not None
    w = np.asarray(weight, np.float64)
    features = units.features(keep)
    target = x @ w if target is None else target
    kept = x[:, features]
    with_bias = units.bias is not None
    design = np.hstack([kept, np.ones((len(kept), 1))]) if with_bias else kept
    gram = design.T @ design
    ridge = RIDGE * float(np.mean(np.diag(gram))) * np.eye(len(gram))
    if with_bias:
        ridge[-1, -1] = 0.0  # the bias is not shrunk
    solution = np.linalg.solve(gram + ridge, design.T @ target)
    before = _relative_error(kept @ w[features], target)
    after = _relative_error(design @ solution, target)
    fitted = np.zeros_like(weight)
    fitted[features] = solution[: len(features)].astype(weight.dtype)
    graph.set_constant(units.weight, fitted)
    if with_bias and units.bias is not None:
        bias = graph.constant(units.bias)
        assert bias is not None
        graph.set_constant(units.bias, (bias + solution[-1]).astype(bias.dtype))
    return {"error_before": round(before, 6), "error_after": round(after, 6)}


def _relative_error(fit: Array, target: Array) -> float:
    centred = target - target.mean(axis=0)
    return float(np.sum((fit - target) ** 2) / max(float(np.sum(centred**2)), 1e-30))
