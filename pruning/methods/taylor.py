"""First-order Taylor importance (Molchanov et al. 2017, "Pruning Convolutional Neural Networks
for Resource Efficient Inference", eq. 8; Molchanov et al. 2019, "Importance Estimation for
Neural Network Pruning", eq. 3 and 8): removing a set S of weights changes the loss by about
``-sum_{s in S} g_s w_s``, so a channel's importance is |sum over its weights of g * w|.

The gradient is taken per calibration sample and the absolute values accumulated over the
samples: a well-fit model's gradient over the whole set is near zero, while per sample it says
how much each channel drives that sample's loss (Molchanov 2019 accumulates over minibatches;
one sample is the finest minibatch). The loss is cross-entropy with the dataset's labels (MSE
with float targets), or with the dense model's own predictions when it has none.

Unstructured and n:m granularities take the per-weight form, sum over samples of |g_s * w| (a
weight is a channel of one), as ordinary scores: ``scope`` and ``layers.overrides`` apply, and
n:m keeps the m - n highest of every group of m (``masks/nm.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from pruning.calibration.dataset import CalibrationData
from pruning.calibration.gradients import differentiable
from pruning.calibration.losses import _loss, _samples
from pruning.masks import prune_in_place
from pruning.masks.nm import prune_nm
from pruning.methods.calibrated import CALIBRATED, CalibratedJob, CalibratedMethod, nm_notes
from pruning.methods.obd import SaliencyScorer
from pruning.models.base import ModelAdapter
from pruning.tensors import FloatArray, WeightTensor


@dataclass(frozen=True)
class TaylorScores:
    """Per prunable weight (by name): ``elements`` sum_s |g_s * w| in the weight's own layout,
    ``channels`` sum_s |sum over output channel c of g_s * w| (one score per output channel)."""

    elements: dict[str, FloatArray]
    channels: dict[str, FloatArray]
    notes: dict[str, Any]


def taylor_scores(
    model: ModelAdapter,
    tensors: Sequence[WeightTensor],
    data: CalibrationData,
    input_names: Sequence[str],
    per_element: bool = True,
) -> TaylorScores:
    """``per_element=False`` skips the per-weight sums (channel pruning needs only channels)."""
    start = time.perf_counter()
    graph = differentiable(model, tensors, input_names)
    names = list(graph.parameters)
    params = [graph.parameters[n].parameter for n in names]
    channels = [torch.zeros(p.shape[0], dtype=torch.float64) for p in params]
    elements = [torch.zeros_like(p, dtype=torch.float64) for p in params] if per_element else []
    for args, target in _samples(graph, data, input_names, batch=1):
        loss = _loss(graph.forward(args), target)
        for i, (p, g) in enumerate(zip(params, torch.autograd.grad(loss, params), strict=True)):
            # Conv/Linear parameters (TorchScript, and onnx2pytorch's conversion of Conv, Gemm
            # and MatMul) hold output channels on axis 0.
            product = (g * p.detach()).reshape(p.shape[0], -1)
            channels[i] += product.sum(dim=1, dtype=torch.float64).abs()
            if per_element:
                elements[i] += product.abs().reshape(p.shape)
    as_weight = {
        n: graph.parameters[n].gradient_as_weight(e).numpy()
        for n, e in zip(names, elements, strict=False)
    }
    labelled = data.targets is not None
    notes = {
        "importance": "first-order Taylor |sum(g * w)|, accumulated over samples",
        "targets": "dataset labels"
        if labelled
        else "model predictions (the dataset has no labels)",
        "gradient_s": round(time.perf_counter() - start, 4),
    }
    per_channel = {n: c.numpy() for n, c in zip(names, channels, strict=True)}
    return TaylorScores(as_weight, per_channel, notes)


@CALIBRATED.register
class TaylorMethod(CalibratedMethod):
    name: ClassVar[str] = "taylor"

    def prune(self, job: CalibratedJob) -> dict[str, Any]:
        scores = taylor_scores(job.model, job.tensors, job.data, job.input_names)
        job.progress(0.5)
        scorer = SaliencyScorer({n: s.astype(np.float32) for n, s in scores.elements.items()})
        notes = dict(scores.notes)
        if job.nm is None:
            prune_in_place(job.tensors, scorer, job.sparsity, job.scope, job.overrides)
        else:
            notes.update(nm_notes(job.nm, prune_nm(job.tensors, scorer, *job.nm, job.nm_columns)))
        job.progress(1.0)
        return notes
