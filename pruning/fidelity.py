"""How close the pruned model's outputs stay to the dense model's on the same inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pruning.errors import DataMismatch
from pruning.inputs import InputPlan
from pruning.models.base import Array, Runner

SAMPLES = 16
SEED = 1000  # apart from the latency inputs' seed, so the two never share a batch


def measure_fidelity(
    dense: Runner, pruned: Runner, plan: InputPlan, output_names: list[str]
) -> dict[str, Any]:
    batch, dense_out, pruned_out = _run_both(dense, pruned, plan)
    outputs = [
        {
            "name": _name(output_names, i),
            **compare_outputs([d[i] for d in dense_out], [p[i] for p in pruned_out]),
        }
        for i in range(len(dense_out[0]))
    ]
    if not outputs:
        raise DataMismatch("the model returned no tensor outputs to compare")
    primary = outputs[0]
    has_batch = any(i.batch != "none" for i in plan.inputs)
    return {
        "output": primary["name"],
        "output_cosine": primary["output_cosine"],
        "max_abs_diff": primary["max_abs_diff"],
        "top1_agreement": primary["top1_agreement"],
        "outputs": outputs,
        "inputs": {
            "samples": batch * len(dense_out) if has_batch else len(dense_out),
            "batch_size": batch,
            "seed": SEED,
            **plan.describe(),
        },
    }


def _run_both(
    dense: Runner, pruned: Runner, plan: InputPlan
) -> tuple[int, list[list[Array]], list[list[Array]]]:
    """Run SAMPLES samples through both; a fixed or traced batch size is honoured."""
    batch = plan.fixed_batch() or SAMPLES
    try:
        return batch, *_run_batches(dense, pruned, plan, batch)
    except DataMismatch:
        example = next((i.dims[0] for i in plan.inputs if i.batch == "variable"), batch)
        if example == batch:
            raise
        return example, *_run_batches(dense, pruned, plan, example)


def _run_batches(
    dense: Runner, pruned: Runner, plan: InputPlan, batch: int
) -> tuple[list[list[Array]], list[list[Array]]]:
    dense_out, pruned_out = [], []
    for run in range(math.ceil(SAMPLES / batch)):
        feeds = plan.feeds(batch, seed=SEED + run)
        assert not isinstance(feeds, str)  # the batch size is one the plan accepts
        dense_out.append(dense.run(feeds))
        pruned_out.append(pruned.run(feeds))
    return dense_out, pruned_out


def compare_outputs(dense: list[Array], pruned: list[Array]) -> dict[str, Any]:
    """Cosine, largest difference and top-1 agreement of two runs' outputs, batch by batch."""
    d = np.concatenate([np.asarray(a, np.float64).ravel() for a in dense])
    p = np.concatenate([np.asarray(a, np.float64).ravel() for a in pruned])
    norms = float(np.linalg.norm(d) * np.linalg.norm(p))
    cosine = float(d @ p) / norms if norms else (1.0 if not d.any() and not p.any() else 0.0)
    diff = float(np.max(np.abs(d - p))) if d.size else 0.0
    return {
        "output_cosine": _finite(cosine),
        "max_abs_diff": _finite(diff),
        "top1_agreement": _top1(dense, pruned),
    }


def _top1(dense: list[Array], pruned: list[Array]) -> float | None:
    """Agreement of argmax over dim 1, for outputs shaped (batch, classes)."""
    first = dense[0]
    if first.ndim != 2 or first.shape[1] < 2 or not np.issubdtype(first.dtype, np.floating):
        return None
    d = np.concatenate([a.argmax(axis=1) for a in dense])
    p = np.concatenate([a.argmax(axis=1) for a in pruned])
    return float(np.mean(d == p))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _name(names: list[str], index: int) -> str:
    return names[index] if index < len(names) else f"output_{index}"
