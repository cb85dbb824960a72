"""The local CLI: pruned model and report.json in a directory, exit 0; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pruning.cli import main
from tests.engine.bert_factories import onnx_bert
from tests.engine.factories import export_onnx, export_torchscript, make_mlp

FAST = ["--batch-sizes", "1,2", "--warmup", "0", "--iterations", "2"]


def test_prune_writes_model_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    code = main(
        [
            "prune",
            str(model),
            "--sparsity",
            "0.7",
            "--exclude",
            "2.*",
            *FAST,
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (tmp_path / "out" / "model.onnx").is_file()
    assert [x["name"] for x in report["sparsity"]["layers"]] == ["0.weight"]
    printed = capsys.readouterr().out
    assert "0.weight" in printed and "achieved sparsity 0.70" in printed
    assert "latency" in printed and "fidelity" in printed


def test_input_shape_flag_feeds_scripted_models(tmp_path: Path) -> None:
    model = export_torchscript(make_mlp(), tmp_path / "mlp.pt", how="script")
    args = ["prune", str(model), "--sparsity", "0.5", "--input-shape", "input=1,32", "-q", *FAST]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model.pt").is_file()


@pytest.mark.parametrize(
    "extra",
    [["--sparsity", "1.5"], ["--sparsity", "0.5", "--exclude", "nothing*"], ["--sparsity", "x"]],
)
def test_bad_input_exits_2_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    assert main(["prune", str(model), *extra, "-q", "-o", str(tmp_path / "out")]) == 2
    assert "error" in capsys.readouterr().err


def test_inspect_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    assert main(["inspect", str(model)]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "onnx"


def test_skipped_tensors_are_printed_with_their_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = onnx_bert(tmp_path / "bert.onnx")
    assert main(["prune", str(model), "--sparsity", "0.5", *FAST, "-o", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "skipped pooler.dense.weight: no node of the graph reads it" in printed
