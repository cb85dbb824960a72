"""The spec's ``evaluation`` metric, measured by running the saved artifact and the uploaded
model with the same runner the latency uses, on the same samples of the evaluation dataset."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pruning.calibration.dataset import TARGET_KEYS, check_array, require_finite_array
from pruning.errors import DataMismatch, InvalidSpec
from pruning.fidelity import EVALUATION, compare_on_samples
from pruning.inputs import InputPlan
from pruning.models.base import Array, ModelAdapter, Runner
from pruning.training.spec import EvaluationSpec

BATCH = 64  # samples per run: bounds activation memory, not the result


def evaluate(
    kind: type[ModelAdapter],
    dense_path: Path,
    pruned_path: Path,
    spec: EvaluationSpec,
    datasets: Mapping[str, Path],
    plan: InputPlan,
    threads: int,
    in_sample: bool,
) -> dict[str, Any]:
    feeds, truth = load_evaluation(spec, datasets, plan)
    samples = len(truth)
    values, outputs = {}, {}
    for role, path in (("dense", dense_path), ("pruned", pruned_path)):
        outputs[role] = _outputs_of(kind, path, feeds, plan, threads)
        values[role] = _metric(spec.metric, outputs[role], truth)
    how = (
        "argmax of the first output over its last axis compared with 'labels'"
        if spec.metric == "accuracy"
        else "mean squared difference between the first output and the targets"
    )
    data = (
        "in-sample: the evaluation dataset is also the retrain or calibration dataset"
        if in_sample
        else "held out from retraining and calibration"
    )
    return {
        "name": spec.metric,
        "dataset_id": spec.dataset_id,
        "samples": samples,
        "dense": values["dense"],
        "pruned": values["pruned"],
        "delta": values["pruned"] - values["dense"],
        "runtime": kind.runtime,
        "threads": threads,
        "in_sample": in_sample,
        "note": f"{how}; measured by running the saved artifact and the uploaded model; {data}",
        # Real samples: what users' data will see; the report's headline fidelity.
        "fidelity": compare_on_samples(outputs["dense"], outputs["pruned"], EVALUATION),
    }


def per_sample_of(
    kind: type[ModelAdapter],
    path: Path,
    metric: str,
    data: tuple[dict[str, Array], Array],
    plan: InputPlan,
    threads: int,
) -> Array:
    """The metric of each sample of ``data`` (``load_evaluation``'s) for the model saved at
    ``path``: what a comparison of two models on the same samples pairs up."""
    feeds, truth = data
    return _per_sample(metric, _outputs_of(kind, path, feeds, plan, threads), truth)


def _outputs_of(
    kind: type[ModelAdapter],
    path: Path,
    feeds: Mapping[str, Array],
    plan: InputPlan,
    threads: int,
) -> Array:
    """The first output of the model saved at ``path`` on every sample of ``feeds``."""
    runner = kind.open_runner(path, threads, plan.names)
    try:
        return _first_outputs(runner, feeds, plan.fixed_batch() or BATCH)
    finally:
        runner.close()


def load_evaluation(
    spec: EvaluationSpec, datasets: Mapping[str, Path], plan: InputPlan
) -> tuple[dict[str, Array], Array]:
    if spec.dataset_id not in datasets:
        raise InvalidSpec(
            f"dataset {spec.dataset_id!r} was not provided", field="evaluation.dataset_id"
        )
    with np.load(datasets[spec.dataset_id], allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for i in plan.inputs:
        check_array(i, arrays)
    truth = _truth(spec.metric, arrays)
    available = len(arrays[plan.inputs[0].name]) if plan.inputs else len(truth)
    if len(truth) != available:
        key = next(k for k in TARGET_KEYS if k in arrays)
        raise DataMismatch(
            f"array {key!r} has {len(truth)} entries for {available} samples", field=key
        )
    count = min(len(truth), spec.samples or len(truth))
    fixed = plan.fixed_batch()
    if fixed:
        count -= count % fixed  # a model with a fixed batch takes whole batches only
    if count < 1:
        raise DataMismatch(f"dataset {spec.dataset_id!r} has too few samples to evaluate")
    return {i.name: arrays[i.name][:count] for i in plan.inputs}, truth[:count]


def _truth(metric: str, arrays: Mapping[str, Array]) -> Array:
    key = next((k for k in TARGET_KEYS if k in arrays), None)
    values = None if key is None else np.asarray(arrays[key])
    if metric == "accuracy":
        if values is None or not np.issubdtype(values.dtype, np.integer):
            raise DataMismatch(
                "evaluation metric 'accuracy' needs integer class ids in an array 'labels'",
                field="labels",
            )
        return values
    if values is None or not np.issubdtype(values.dtype, np.floating):
        raise DataMismatch(
            "evaluation metric 'mse' needs float 'targets' (or float 'labels') shaped like the "
            "model's first output",
            field="targets",
        )
    require_finite_array("targets" if "targets" in arrays else "labels", values)
    return values


def _first_outputs(runner: Runner, feeds: Mapping[str, Array], batch: int) -> Array:
    count = len(next(iter(feeds.values())))
    parts = []
    for start in range(0, count, batch):
        part = {name: values[start : start + batch] for name, values in feeds.items()}
        parts.append(np.asarray(runner.run(part)[0]))
    return np.concatenate(parts)


def _metric(metric: str, out: Array, truth: Array) -> float:
    return float(np.mean(_per_sample(metric, out, truth)))


def _per_sample(metric: str, out: Array, truth: Array) -> Array:
    """1.0 or 0.0 per sample for ``accuracy`` (per output row, for sequence models); the mean
    squared error of each sample's outputs for ``mse``."""
    if metric == "accuracy":
        if truth.ndim == out.ndim and truth.shape[-1] == 1:  # a column of ids
            truth = truth.reshape(truth.shape[:-1])
        if truth.shape != out.shape[:-1]:
            raise DataMismatch(
                f"labels have shape {list(truth.shape)}, but the model's first output is "
                f"{list(out.shape)}: give one class id per output row",
                field="labels",
            )
        classes = out.shape[-1]
        if truth.size and (int(truth.min()) < 0 or int(truth.max()) >= classes):
            # An id the model cannot predict would count as a silent miss: say so instead.
            raise DataMismatch(
                f"labels must be class ids in [0, {classes}) for a model with {classes} "
                f"outputs; found {int(truth.min())}..{int(truth.max())}",
                field="labels",
            )
        hits = (out.argmax(axis=-1) == truth).astype(np.float64)
        per_row: Array = hits.reshape(len(out), -1).mean(axis=1)
        return per_row
    if truth.size != out.size:
        raise DataMismatch(
            f"targets have shape {list(truth.shape)}, but the model's first output is "
            f"{list(out.shape)}",
            field="targets",
        )
    diff = out.astype(np.float64) - truth.reshape(out.shape).astype(np.float64)
    errors: Array = (diff**2).reshape(len(out), -1).mean(axis=1)
    return errors
