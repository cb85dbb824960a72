"""How the outputs moved on the calibration samples themselves. The report's main fidelity
block feeds synthetic inputs (seeded normal noise), which data-driven methods never claimed
to preserve: they fit the data distribution, so their fidelity is also measured on it. The
figures are in-sample (the samples the method saw); an evaluation dataset gives held-out ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pruning.calibration.dataset import CalibrationData
from pruning.calibration.onnx_capture import CALIBRATION_THREADS, current_proto
from pruning.models.base import Array, ModelAdapter
from pruning.models.onnx_model import OnnxModel, session_for
from pruning.models.torchscript_model import TorchScriptModel


def first_outputs(model: ModelAdapter, data: CalibrationData, names: Sequence[str]) -> Array:
    """The model's first output for every calibration sample, with the weights as they are."""
    parts = []
    if isinstance(model, OnnxModel):
        proto = current_proto(model).SerializeToString()
        session = session_for(proto, threads=CALIBRATION_THREADS)
        parts = [np.asarray(session.run(None, dict(feeds))[0]) for feeds, _ in data.batches()]
    elif isinstance(model, TorchScriptModel):
        with torch.no_grad():
            for feeds, _ in data.batches():
                out: Any = model.module(*[torch.from_numpy(feeds[n]) for n in names])
                while isinstance(out, list | tuple):
                    out = out[0]
                parts.append(out.detach().numpy().copy())
    return np.concatenate(parts)


def compare_on_data(dense: Array, pruned: Array, data: CalibrationData) -> dict[str, Any]:
    """Cosine over all output values (as the main fidelity block), top-1 agreement and, with
    integer labels, accuracy dense vs pruned."""
    d, p = dense.astype(np.float64).ravel(), pruned.astype(np.float64).ravel()
    norms = float(np.linalg.norm(d) * np.linalg.norm(p))
    out: dict[str, Any] = {
        "inputs": "calibration samples (in-sample)",
        "samples": data.samples,
        "output_cosine": float(d @ p) / norms if norms else None,
    }
    if dense.ndim == 2 and dense.shape[1] > 1:
        out["top1_agreement"] = float(np.mean(dense.argmax(1) == pruned.argmax(1)))
        labels = data.targets
        if labels is not None and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
            out["accuracy"] = {
                "dense": float(np.mean(dense.argmax(1) == labels)),
                "pruned": float(np.mean(pruned.argmax(1) == labels)),
            }
    return out
