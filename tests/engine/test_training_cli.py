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


@pytest.mark.parametrize("method", ["l0", "variational_dropout", "str", "movement"])
def test_cli_runs_a_learned_method_to_the_exact_sparsity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=2), tmp_path / "mlp.onnx")
    data = digits_datasets(tmp_path, model)

    code = main(
        [
            "prune",
            str(model),
            "--sparsity",
            "0.9",
            "--method",
            method,
            "--no-latency",
            "-q",
            "-o",
            str(tmp_path / "out"),
            "--retrain-data",
            str(data["ds_train"]),
            "--epochs",
            "2",
        ]
    )

    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["sparsity"]["achieved"] == pytest.approx(0.9, abs=1e-4)
    learned = report["training"]["learned"]
    assert learned["method"] == method
    assert f"{method} learned density" in capsys.readouterr().out


def test_cli_refuses_a_learned_method_without_retrain_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = export_digits(make_digits_mlp(), tmp_path / "mlp.onnx")

    out = str(tmp_path / "out")
    code = main(["prune", str(model), "--sparsity", "0.9", "--method", "l0", "-o", out, "-q"])

    assert code == 2
    assert "--retrain-data" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.json").exists()
