"""What a spec naming a learned method must hold (the engine's own check; the API's is in
``api_schemas.spec``): a training dataset, single weights, and no schedule of events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pruning.errors import InvalidSpec, Unsupported
from pruning.training.learned.registry import is_learned
from pruning.training.spec import RetrainSpec, ScheduleSpec
from shears_methods import METHODS


def check_learned(
    method: str,
    options: Mapping[str, Any],
    retrain: RetrainSpec | None,
    schedule: ScheduleSpec,
    granularity: str,
) -> None:
    if not is_learned(method):
        return
    fraction = options.get("finetune_fraction", 0.25)
    if not 0.0 <= fraction < 1.0:
        raise InvalidSpec(
            f"method.finetune_fraction must be in [0, 1), got {fraction!r}",
            field="method.finetune_fraction",
        )
    for key in ("lr", "dual_lr"):
        if key in options and not options[key] > 0:
            raise InvalidSpec(f"method.{key} must be positive", field=f"method.{key}")
    if retrain is None:
        raise InvalidSpec(
            f"method {method!r} learns which weights to drop while training, so it needs "
            '"retrain": {"dataset_id": "ds_...", "epochs": ...}',
            field="retrain",
        )
    if granularity not in METHODS[method].granularities:
        raise Unsupported(
            f"method {method!r} learns single weights; use granularity 'unstructured'",
            field="granularity",
        )
    allowed = METHODS[method].schedules
    if schedule.kind not in allowed:
        raise Unsupported(
            f"method {method!r} sets its own sparsity over training; schedule must be "
            f"{' or '.join(repr(a) for a in allowed)}, not {schedule.kind!r}",
            field="schedule.kind",
        )
    if retrain.regrow:
        raise Unsupported(
            f"method {method!r} can bring back any weight while it trains; retrain.regrow "
            "applies to pruning events only",
            field="retrain.regrow",
        )
