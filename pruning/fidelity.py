"""How close the pruned model's outputs stay to the dense model's on the same inputs.

The headline figure is measured on real samples when the job has them (the evaluation's,
else the calibration's), and on synthetic inputs only otherwise. A figure is reported only
where it can show a difference: synthetic values that may be invalid, or inputs on which the
dense model answers the same to every sample (all padding, a saturated model), give
``measured: false`` and the reason instead of a cosine of 1.0 that no user input would see.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pruning.calibration.dataset import CalibrationData, load_calibration
from pruning.calibration.dense_outputs import DenseOutputs
from pruning.calibration.outputs import compare_on_data
from pruning.errors import DataMismatch
from pruning.inputs import InputPlan
from pruning.models.base import Array, Runner
from pruning.spec import PruneSpec

SAMPLES = 16
CHUNK = 1  # synthetic samples per run: the unit a budget can stop at
BUDGET_SHARE = 0.5  # of latency.budget_s, at most, for the synthetic fidelity (latency: the rest)
SEED = 1000  # apart from the latency inputs' seed, so the two never share a batch
DATA_SAMPLES = 256  # calibration samples compared at most: the figure settles long before
SYNTHETIC, EVALUATION, CALIBRATION = "synthetic inputs", "evaluation data", "calibration data"
# Relative spread under which outputs count as the same for every sample (float32 noise).
CONSTANT_SPREAD = 1e-6
# Where the dense side of the in-sample fidelity came from (the report's ``dense_outputs``).
CALIBRATION_PASS = "the method's calibration forward (the upload's graph, these samples)"
SEPARATE_RUN = "a forward of the upload on these samples"


def measure_fidelity(
    dense: Runner,
    pruned: Runner,
    plan: InputPlan,
    output_names: list[str],
    budget_s: float | None = None,
) -> dict[str, Any]:
    """Both models on seeded synthetic inputs drawn from the ranges the graph allows.
    ``budget_s`` (the latency budget; None or 0: unbounded): runs of ``CHUNK`` samples stop
    once the next would end past ``BUDGET_SHARE`` of it; the first always runs."""
    reason = plan.unrepresentative()
    if reason is not None:
        return not_measured(SYNTHETIC, reason, inputs=plan.describe())
    deadline = time.perf_counter() + BUDGET_SHARE * budget_s if budget_s else None
    batch, dense_out, pruned_out = _run_both(dense, pruned, plan, deadline)
    outputs = [
        {
            "name": _name(output_names, i),
            **compare_outputs([d[i] for d in dense_out], [p[i] for p in pruned_out]),
        }
        for i in range(len(dense_out[0]))
    ]
    if not outputs:
        raise DataMismatch("the model returned no tensor outputs to compare")
    has_batch = any(i.batch != "none" for i in plan.inputs)
    inputs = {
        "samples": batch * len(dense_out) if has_batch else len(dense_out),
        "batch_size": batch,
        "seed": SEED,
        **plan.describe(),
    }
    if deadline is not None and has_batch and inputs["samples"] < SAMPLES:
        inputs["budget"] = (
            f"{inputs['samples']} of {SAMPLES} samples: the next run would have ended past "
            f"{BUDGET_SHARE:.0%} of latency.budget_s ({budget_s} s)"
        )
    first = _per_sample([d[0] for d in dense_out], batch if has_batch else None)
    constant = same_for_every_sample(first, SYNTHETIC)
    if constant is not None:
        return not_measured(SYNTHETIC, constant, output=outputs[0]["name"], inputs=inputs)
    primary = outputs[0]
    return {
        "measured": True,
        "source": SYNTHETIC,
        "reason": None,
        "output": primary["name"],
        "output_cosine": primary["output_cosine"],
        "max_abs_diff": primary["max_abs_diff"],
        "top1_agreement": primary["top1_agreement"],
        "samples": inputs["samples"],
        "outputs": outputs,
        "inputs": inputs,
    }


def seconds_per_sample(fidelity: dict[str, Any], seconds: float) -> float | None:
    """Both models' time per synthetic sample, from a fidelity measurement that took
    ``seconds`` (None when it ran nothing, or ran a fixed batch that is not per sample)."""
    inputs = fidelity.get("inputs") or {}
    samples = fidelity.get("samples")
    if not fidelity.get("measured") or not samples or inputs.get("batch_size") != CHUNK:
        return None
    return seconds / int(samples)


def compare_on_samples(dense: Array, pruned: Array, source: str) -> dict[str, Any]:
    """The first outputs of both models on the same real samples (axis 0)."""
    samples = int(dense.shape[0]) if dense.ndim else 1
    constant = same_for_every_sample(dense.reshape(samples, -1), source)
    if constant is not None:
        return not_measured(source, constant, samples=samples)
    return {
        "measured": True,
        "source": source,
        "reason": None,
        **compare_outputs([dense], [pruned]),
        "samples": samples,
    }


def measure_on_calibration(
    open_runner: Callable[[Path], Runner],
    models: tuple[Path, Path],
    plan: InputPlan,
    spec: PruneSpec,
    datasets: Mapping[str, Path],
    block: dict[str, Any] | None,
    kept: DenseOutputs | None = None,
) -> dict[str, Any] | None:
    """The upload and the saved artifact (``models``) on the job's calibration samples, run
    once for two figures: the headline (None when the job has no calibration data, or has
    evaluation data, which leads) and, when a calibrated method left it to be measured here
    (``block["fidelity"]`` is None: a one-shot job), the calibration block's in-sample
    ``fidelity``. In-sample: the method chose its weights on these samples. ``kept``: the
    upload's outputs on them from the method's own forward, used instead of running it again
    (the report's ``dense_outputs`` says which)."""
    calibration = spec.calibration
    deferred = block is not None and "fidelity" in block and block["fidelity"] is None
    if calibration is None or (spec.evaluation is not None and not deferred):
        return None
    path = datasets.get(calibration.dataset_id)
    if path is None:
        return None
    began = time.perf_counter()
    count = min(calibration.samples, DATA_SAMPLES)
    data = load_calibration(Path(path), calibration.dataset_id, count, plan.inputs)
    dense = None if kept is None else kept.first(data.samples)
    source = CALIBRATION_PASS if dense is not None else SEPARATE_RUN
    if dense is None:
        dense = _first_outputs(open_runner(models[0]), data)
    pruned = _first_outputs(open_runner(models[1]), data)
    if deferred:
        assert block is not None
        block["fidelity"] = {**compare_on_data(dense, pruned, data), "dense_outputs": source}
    if spec.evaluation is not None:
        return None
    compared = compare_on_samples(dense, pruned, CALIBRATION)
    seconds = round(time.perf_counter() - began, 3)
    return {
        **compared,
        "dataset_id": calibration.dataset_id,
        "in_sample": True,
        "time_s": seconds,
        "dense_outputs": source,
    }


def _first_outputs(runner: Runner, data: CalibrationData) -> Array:
    try:
        return np.concatenate([np.asarray(runner.run(feeds)[0]) for feeds, _ in data.batches()])
    finally:
        runner.close()


def headline(
    synthetic: dict[str, Any],
    metric: Mapping[str, Any] | None,
    on_calibration: dict[str, Any] | None,
) -> dict[str, Any]:
    """The report's ``quality``: real data leads; the synthetic figure stays beside it."""
    on_evaluation = metric.get("fidelity") if metric else None
    chosen = on_calibration
    if metric and on_evaluation:
        chosen = {**on_evaluation, "dataset_id": metric.get("dataset_id")}
    if not chosen:
        return {"fidelity": synthetic, "metric": metric}
    return {"fidelity": chosen, "synthetic_fidelity": synthetic, "metric": metric}


def not_measured(source: str, reason: str, **context: Any) -> dict[str, Any]:
    return {
        "measured": False,
        "source": source,
        "reason": reason,
        "output_cosine": None,
        "max_abs_diff": None,
        "top1_agreement": None,
        "outputs": None,
        **context,
    }


def same_for_every_sample(rows: Array, source: str) -> str | None:
    """Why a comparison on these dense outputs (one row per sample) cannot show a
    difference, or None. Equal outputs for different inputs mean the inputs never reach the
    weights (every token padding, say), so the pruned model answers alike and agrees."""
    if rows.shape[0] < 2 or rows.size == 0:
        return None
    values = rows.astype(np.float64)
    scale = float(np.max(np.abs(values)))
    spread = float(np.max(np.ptp(values, axis=0)))
    if spread > CONSTANT_SPREAD * scale or not math.isfinite(spread):
        return None
    return (
        f"the dense model gives the same output for all {rows.shape[0]} samples of the "
        f"{source}, so no comparison on them can show what pruning changed; give evaluation "
        "or calibration data whose samples the model tells apart"
    )


def _per_sample(outputs: Sequence[Array], batch: int | None) -> Array:
    """One row per sample: split along the batch axis when the outputs have one."""
    if batch is not None and all(o.ndim and o.shape[0] == batch for o in outputs):
        joined = np.concatenate([np.asarray(o) for o in outputs])
        return joined.reshape(joined.shape[0], -1)
    return np.stack([np.asarray(o).ravel() for o in outputs])


def _run_both(
    dense: Runner, pruned: Runner, plan: InputPlan, deadline: float | None
) -> tuple[int, list[list[Array]], list[list[Array]]]:
    """Run SAMPLES samples through both; a fixed or traced batch size is honoured."""
    fixed = plan.fixed_batch()
    if fixed is not None:
        return fixed, *_run_batches(dense, pruned, plan, fixed, deadline)
    try:
        return CHUNK, *_run_chunks(dense, pruned, plan, deadline)
    except DataMismatch:
        example = next((i.dims[0] for i in plan.inputs if i.batch == "variable"), CHUNK)
        if example == CHUNK:
            raise
        return example, *_run_batches(dense, pruned, plan, example, deadline)


def _run_chunks(
    dense: Runner, pruned: Runner, plan: InputPlan, deadline: float | None
) -> tuple[list[list[Array]], list[list[Array]]]:
    """SAMPLES samples drawn at once (the same inputs whatever the budget allows), run
    ``CHUNK`` at a time while the deadline allows."""
    feeds = plan.feeds(SAMPLES, seed=SEED)
    assert not isinstance(feeds, str)  # a variable batch takes any size
    batched = {i.name for i in plan.inputs if i.batch == "variable"}
    dense_out, pruned_out = [], []
    for start in range(0, SAMPLES, CHUNK):
        began = time.perf_counter()
        chunk = {k: v[start : start + CHUNK] if k in batched else v for k, v in feeds.items()}
        dense_out.append(dense.run(chunk))
        pruned_out.append(pruned.run(chunk))
        if _past(deadline, began):
            break
    return dense_out, pruned_out


def _past(deadline: float | None, began: float) -> bool:
    """Whether another run as long as the one begun at ``began`` would end past it."""
    now = time.perf_counter()
    return deadline is not None and now + (now - began) > deadline


def _run_batches(
    dense: Runner, pruned: Runner, plan: InputPlan, batch: int, deadline: float | None
) -> tuple[list[list[Array]], list[list[Array]]]:
    dense_out, pruned_out = [], []
    for run in range(math.ceil(SAMPLES / batch)):
        began = time.perf_counter()
        feeds = plan.feeds(batch, seed=SEED + run)
        assert not isinstance(feeds, str)  # the batch size is one the plan accepts
        dense_out.append(dense.run(feeds))
        pruned_out.append(pruned.run(feeds))
        if _past(deadline, began):
            break
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
