"""A calibrated job's progress events name the layer just calibrated, so a long job shows
movement layer by layer, and the fractions only grow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pruning import prune
from tests.engine.bert_factories import calibration_npz, onnx_bert
from tests.engine.factories import fast_spec


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_prune_events_name_every_layer_as_it_is_calibrated(tmp_path: Path, method: str) -> None:
    model = onnx_bert(tmp_path / "bert.onnx", None)
    data = calibration_npz(tmp_path / "calibration.npz")
    events: list[tuple[str, float, dict[str, Any] | None]] = []
    spec = fast_spec(
        method={"name": method},
        sparsity=0.5,
        scope="layerwise",
        calibration={"dataset_id": "ds", "samples": 24},
    )
    report = prune(
        model, spec, tmp_path / "out", progress=lambda *e: events.append(e), datasets={"ds": data}
    ).report
    named = [
        info["layer"] for stage, _, info in events if stage == "prune" and info and "layer" in info
    ]
    pruned = [layer["name"] for layer in report["sparsity"]["layers"]]
    assert sorted(named) == sorted(pruned) and len(named) == len(pruned) > 1
    assert all(
        info["method"] == method
        for s, _, info in events
        if s == "prune" and info and "layer" in info
    )
    during = [f for stage, f, _ in events if stage == "prune"]
    assert during == sorted(during) and during[0] < during[-1]
