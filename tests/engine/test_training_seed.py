"""A retraining job is reproducible: the same spec and seed give the same artifact, and the
report is plain JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pruning import prune
from tests.engine.training_factories import (
    digits_datasets,
    export_digits,
    make_digits_mlp,
    retrain_spec,
    trained,
    weights_of,
)


def test_the_same_seed_gives_the_same_retrained_weights(tmp_path: Path) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=2), tmp_path / "mlp.pt")
    datasets = digits_datasets(tmp_path, model)
    spec = retrain_spec(0.7, {"kind": "gradual", "steps": 2}, epochs=2, max_samples=600, seed=7)
    runs = [prune(model, spec, tmp_path / f"run{i}", datasets=datasets) for i in range(2)]
    names = ["1.weight", "1.bias", "3.weight", "3.bias"]
    first, second = (weights_of(r.artifacts["model"], names) for r in runs)
    assert all(np.array_equal(first[n], second[n]) for n in names)
    report = runs[0].report
    assert report["training"]["samples"] == {"train": 600, "validation": 0}
    assert json.loads(json.dumps(report))["training"]["seed"] == 7
