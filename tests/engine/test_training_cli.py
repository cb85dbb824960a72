"""``shears prune`` retrains from a local ``.npz`` and reports the measured metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pruning.cli import main
from tests.engine.training_factories import (
    digits_datasets,
    export_digits,
    make_digits_mlp,
    trained,
)


def test_cli_retrains_on_a_local_file_and_prints_the_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=2), tmp_path / "mlp.onnx")
    data = digits_datasets(tmp_path, model)
    code = main(
        [
            "prune",
            str(model),
            "--sparsity",
            "0.8",
            "--no-latency",
            "-q",
            "-o",
            str(tmp_path / "out"),
            "--retrain-data",
            str(data["ds_train"]),
            "--schedule",
            "iterative",
            "--rounds",
            "2",
            "--epochs",
            "2",
            "--eval-data",
            str(data["ds_test"]),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["training"]["schedule"] == {"kind": "iterative", "rounds": 2}
    assert report["quality"]["metric"]["name"] == "accuracy"
    assert "pruned" in capsys.readouterr().out
