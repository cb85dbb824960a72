"""Which ranking a channel job uses: the norm of ``granularity.importance`` (magnitude), or the
loss-based first-order Taylor score of ``method: taylor`` computed on the calibration data
(Molchanov et al. 2019, eq. 8; ``pruning.methods.taylor``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pruning.calibration.dataset import load_calibration, require_calibration
from pruning.errors import Unsupported
from pruning.inputs import InputPlan
from pruning.layers import LayerPlan
from pruning.methods.calibrated import CALIBRATED
from pruning.methods.taylor import TaylorMethod, taylor_scores
from pruning.models.base import ModelAdapter
from pruning.spec import PruneSpec
from pruning.structured.importance import Importance


@dataclass(frozen=True)
class ChannelRanking:
    importance: Importance
    label: str  # the report's structure.importance
    calibration: dict[str, Any] | None = None  # the report's calibration block


def channel_ranking(
    model: ModelAdapter,
    plan: LayerPlan,
    spec: PruneSpec,
    inputs: InputPlan,
    datasets: Mapping[str, Path],
) -> ChannelRanking:
    name = spec.method.name
    if name == TaylorMethod.name:
        return _taylor(model, plan, spec, inputs, datasets)
    if name in CALIBRATED:
        raise Unsupported(
            f"method {name!r} prunes unstructured or n:m; channels are ranked by "
            "granularity.importance ('l1', 'l2') or by method 'taylor'",
            field="method.name",
        )
    return ChannelRanking(spec.channel_importance, spec.channel_importance)


def _taylor(
    model: ModelAdapter,
    plan: LayerPlan,
    spec: PruneSpec,
    inputs: InputPlan,
    datasets: Mapping[str, Path],
) -> ChannelRanking:
    path = require_calibration(TaylorMethod.name, spec.calibration, datasets)
    assert spec.calibration is not None  # require_calibration checked it
    start = time.perf_counter()
    data = load_calibration(
        path, spec.calibration.dataset_id, spec.calibration.samples, inputs.inputs
    )
    load_s = round(time.perf_counter() - start, 4)
    scores = taylor_scores(model, plan.selected, data, inputs.names, per_element=False)
    notes = {**data.describe(), "data_load_s": load_s, **scores.notes}
    return ChannelRanking(scores.channels, TaylorMethod.name, notes)
