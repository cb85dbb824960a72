"""Training data: the retrain dataset's ``.npz`` (arrays keyed by the model's input names, plus
``labels`` or ``targets``), checked like calibration data, split into train and validation
(the last ``validation_split`` of the samples) and served as shuffled torch batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pruning.calibration.dataset import TARGET_KEYS, check_array, require_finite_array
from pruning.errors import DataMismatch
from pruning.inputs import ResolvedInput


@dataclass(frozen=True)
class Split:
    inputs: list[torch.Tensor]  # in the model's input order, [samples, ...]
    labels: torch.Tensor | None  # integer class ids
    targets: torch.Tensor | None  # float regression targets
    teacher: torch.Tensor | None = None  # the dense model's first output (distillation)

    @property
    def samples(self) -> int:
        return int(self.inputs[0].shape[0])

    def take(self, index: torch.Tensor | slice) -> Split:
        return Split(
            [x[index] for x in self.inputs],
            None if self.labels is None else self.labels[index],
            None if self.targets is None else self.targets[index],
            None if self.teacher is None else self.teacher[index],
        )


@dataclass(frozen=True)
class TrainingData:
    dataset_id: str
    train: Split
    validation: Split | None
    batch_size: int

    @property
    def batches_per_epoch(self) -> int:
        return len(batch_bounds(self.train.samples, self.batch_size))

    def epoch(self, generator: torch.Generator) -> Iterator[Split]:
        """One pass over the training samples in a fresh seeded order."""
        order = torch.randperm(self.train.samples, generator=generator)
        for start, stop in batch_bounds(self.train.samples, self.batch_size):
            yield self.train.take(order[start:stop])

    def in_order(self, split: Split) -> Iterator[Split]:
        for start, stop in batch_bounds(split.samples, self.batch_size):
            yield split.take(slice(start, stop))


def batch_bounds(samples: int, batch_size: int) -> list[tuple[int, int]]:
    """Consecutive batches; a last batch of one sample joins the one before, because batch
    norm in training mode cannot normalise a single sample."""
    bounds = [(s, min(s + batch_size, samples)) for s in range(0, samples, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], samples)]
    return bounds


def load_training_data(
    path: Path,
    dataset_id: str,
    inputs: Sequence[ResolvedInput],
    batch_size: int,
    validation_split: float,
    max_samples: int | None,
) -> TrainingData:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for spec in inputs:
        try:
            check_array(spec, arrays)
        except DataMismatch as exc:
            where = f"retrain dataset {dataset_id!r}"
            raise DataMismatch(exc.message.replace("calibration data", where)) from exc
    count = min(len(arrays[inputs[0].name]), max_samples or 2**62)
    held_out = int(count * validation_split)
    if count - held_out < 1:
        raise DataMismatch(
            f"dataset {dataset_id!r} has {count} samples; retraining needs at least 1 to train on"
        )
    fixed = next((i.dims[0] for i in inputs if i.batch == "fixed"), None)
    feeds = [torch.from_numpy(np.ascontiguousarray(arrays[i.name][:count])) for i in inputs]
    labels, targets = _targets(arrays, count)
    everything = Split(feeds, labels, targets)
    train = everything.take(slice(0, count - held_out))
    validation = everything.take(slice(count - held_out, count)) if held_out else None
    return TrainingData(dataset_id, train, validation, fixed or batch_size)


def _targets(
    arrays: dict[str, np.ndarray], count: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Integer ``labels`` are class ids; float ``labels`` or ``targets`` are regression
    targets."""
    key = next((k for k in TARGET_KEYS if k in arrays), None)
    if key is None:
        return None, None
    values = np.ascontiguousarray(arrays[key][:count])
    if len(values) != count:
        raise DataMismatch(f"array {key!r} has {len(values)} entries for {count} samples")
    if np.issubdtype(values.dtype, np.integer):
        return torch.from_numpy(values.astype(np.int64)), None
    if np.issubdtype(values.dtype, np.floating):
        require_finite_array(key, values)
        return None, torch.from_numpy(values)
    raise DataMismatch(
        f"array {key!r} must hold integers (class ids) or floats, not {values.dtype}"
    )
