"""Per-sample shapes of a job's own data, read from the ``.npz`` headers (no array is loaded):
a model whose inputs have symbolic axes (a sequence length) is fed synthetic inputs for
latency and fidelity in the shape its data has, so the job needs no ``input_shapes``."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pruning.spec import PruneSpec


@dataclass(frozen=True)
class DataShapes:
    source: str  # which dataset, for the report's inputs.source
    shapes: dict[str, tuple[int, ...]]  # array name -> shape, samples first


def data_shapes(spec: PruneSpec, datasets: Mapping[str, Path]) -> DataShapes | None:
    """The shapes of the first of the job's calibration, evaluation and retraining datasets
    that was provided; None when the job has none."""
    for role, ref in (
        ("calibration", spec.calibration),
        ("evaluation", spec.evaluation),
        ("retraining", spec.retrain),
    ):
        path = datasets.get(ref.dataset_id) if ref is not None else None
        if ref is not None and path is not None:
            shapes = array_shapes(Path(path))
            if shapes:
                return DataShapes(f"{role} data {ref.dataset_id!r}", shapes)
    return None


def array_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each array's shape from its ``.npy`` header; a file that is not a readable ``.npz``
    gives none here, and loading it later names what is wrong."""
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, _ = read(f)
                shapes[info.filename.removesuffix(".npy")] = tuple(int(d) for d in shape)
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}
    return shapes
