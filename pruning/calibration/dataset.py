"""Calibration data: an ``.npz`` whose arrays are keyed by the model's input names, plus an
optional ``labels`` (or ``targets``) array, read with ``allow_pickle=False``.

Names, dtypes and trailing shapes are checked against the model's resolved inputs before any
work starts; a mismatch is a ``DataMismatch`` naming the array and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pruning.errors import DataMismatch, InvalidSpec
from pruning.inputs import ResolvedInput
from pruning.models.base import Array

TARGET_KEYS = ("labels", "targets")
BATCH = 32  # samples per forward pass: bounds activation memory, not the statistics


@dataclass(frozen=True)
class CalibrationData:
    dataset_id: str
    inputs: dict[str, Array]  # input name -> [samples, ...]
    targets: Array | None
    samples: int
    batch: int = BATCH

    def batches(self) -> Iterator[tuple[dict[str, Array], Array | None]]:
        """(feeds, targets) for consecutive slices of at most ``batch`` samples."""
        for start in range(0, self.samples, self.batch):
            stop = min(start + self.batch, self.samples)
            feeds = {name: values[start:stop] for name, values in self.inputs.items()}
            yield feeds, None if self.targets is None else self.targets[start:stop]

    def describe(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "samples": self.samples,
            "inputs": sorted(self.inputs),
            "labels": self.targets is not None,
        }


def load_calibration(
    path: Path, dataset_id: str, samples: int, inputs: Sequence[ResolvedInput]
) -> CalibrationData:
    """The first ``samples`` samples of the dataset, checked against the model's inputs."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for spec in inputs:
        check_array(spec, arrays)
    fixed = next((i.dims[0] for i in inputs if i.batch == "fixed"), None)
    available = len(next(iter(arrays.values())))
    count = min(samples, available)
    if fixed is not None:
        count -= count % fixed  # a model with a fixed batch takes whole batches only
    if count < 1:
        raise DataMismatch(f"dataset {dataset_id!r} has {available} samples; need at least 1")
    feeds = {i.name: np.ascontiguousarray(arrays[i.name][:count]) for i in inputs}
    key = next((k for k in TARGET_KEYS if k in arrays), None)
    targets = None if key is None else np.asarray(arrays[key][:count])
    return CalibrationData(dataset_id, feeds, targets, count, fixed or BATCH)


def check_array(spec: ResolvedInput, arrays: Mapping[str, Array]) -> None:
    """The array feeding ``spec`` exists, has its dtype and its shape after the batch axis."""
    if spec.name not in arrays:
        raise DataMismatch(
            f"calibration data has no array {spec.name!r} (the model's input); "
            f"arrays: {sorted(arrays)}"
        )
    values = arrays[spec.name]
    if values.dtype != spec.dtype:
        raise DataMismatch(
            f"array {spec.name!r} is {values.dtype}, but the model's input is {spec.dtype}"
        )
    expected = list(spec.dims[1:])
    if spec.batch == "none" or list(values.shape[1:]) != expected:
        raise DataMismatch(
            f"array {spec.name!r} has shape {list(values.shape)}; expected "
            f"[samples, {', '.join(map(str, expected))}]"
        )
    require_finite_array(spec.name, values)


def require_finite_array(name: str, values: Array) -> None:
    """NaN or infinity in data poisons every statistic and gradient downstream, where the
    error would name the wrong cause; refuse it here, naming the array and a sample."""
    if not np.issubdtype(values.dtype, np.floating) or values.ndim == 0:
        return
    finite = np.asarray(np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    if not finite.all():
        first = int(np.argmin(finite))
        raise DataMismatch(
            f"array {name!r} contains NaN or infinite values ({int((~finite).sum())} of "
            f"{finite.size} samples, the first at index {first}); clean or drop those samples",
            field=name,
        )


def require_calibration(method: str, calibration: object, datasets: Mapping[str, Path]) -> Path:
    """The local path of the dataset a calibrated method refers to."""
    dataset_id = getattr(calibration, "dataset_id", None)
    if dataset_id is None:
        raise InvalidSpec(
            f"method {method!r} needs calibration data: set "
            '"calibration": {"dataset_id": "ds_...", "samples": 128}',
            field="calibration",
        )
    if dataset_id not in datasets:
        raise InvalidSpec(f"dataset {dataset_id!r} was not provided", field="calibration")
    return Path(datasets[dataset_id])
