"""One job's context: what every stage of the engine reads (the model, the layers planned, the
spec, the inputs, the data, progress, where files go), passed as one frozen value instead of
the same seven arguments down every call. A stage that changes one of them for what it calls
(a training event's spec and plan, a smaller model after a channel cut) makes a new context
with ``with_``; nothing is changed in place."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pruning.inputs import InputPlan
from pruning.layers import LayerPlan
from pruning.models.base import ModelAdapter
from pruning.progress import Progress
from pruning.spec import PruneSpec


@dataclass(frozen=True)
class JobContext:
    model: ModelAdapter
    plan: LayerPlan
    spec: PruneSpec
    inputs: InputPlan
    datasets: Mapping[str, Path]  # dataset id -> .npz path, for calibration and retraining
    step: Progress
    out_dir: Path

    def with_(self, **changes: Any) -> JobContext:
        return dataclasses.replace(self, **changes)
