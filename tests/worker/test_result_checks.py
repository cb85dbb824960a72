"""The child is untrusted: its result must name files in its own out/ dir and carry a
report that fits the contract, or nothing is stored."""

import json
from pathlib import Path
from typing import Any

import pytest

from worker.artifacts import ResultRejected, check_result

VALID_REPORT: dict[str, Any] = {
    "sparsity": {
        "target": 0.5,
        "achieved": 0.5,
        "layers": [{"name": "w", "shape": [2, 2], "parameters": 4, "nonzeros": 2, "sparsity": 0.5}],
    },
    "storage": {"dense_bytes": 16, "formats": {"file": 100}},
    "latency": {"runtime": "onnxruntime", "threads": 1, "results": []},
    "quality": {"fidelity": {"output_cosine": 1.0, "max_abs_diff": 0.0, "top1_agreement": 1.0}},
    "timings": {"load_s": 0, "prune_s": 0, "retrain_s": 0, "benchmark_s": 0},
    "engine_extra": {"kept": True},
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.onnx").write_bytes(b"onnx")
    return tmp_path


def test_valid_result_keeps_the_engines_extra_report_fields(workdir: Path) -> None:
    checked = check_result(
        {"artifacts": {"model": "out/model.onnx"}, "report": VALID_REPORT}, workdir
    )

    assert checked.files == {"model": workdir / "out" / "model.onnx"}
    assert checked.report["engine_extra"] == {"kept": True}


def test_report_that_does_not_fit_the_contract_is_rejected(workdir: Path) -> None:
    report = {k: v for k, v in VALID_REPORT.items() if k != "latency"}

    with pytest.raises(ResultRejected, match="Report contract"):
        check_result({"artifacts": {"model": "out/model.onnx"}, "report": report}, workdir)


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "request.json"])
def test_artifact_outside_the_out_dir_is_rejected(workdir: Path, path: str) -> None:
    (workdir / "request.json").write_text(json.dumps({}))

    with pytest.raises(ResultRejected, match="output dir"):
        check_result({"artifacts": {"model": path}, "report": VALID_REPORT}, workdir)


def test_artifact_that_is_a_symlink_is_rejected(workdir: Path) -> None:
    (workdir / "out" / "link.onnx").symlink_to("/etc/passwd")

    with pytest.raises(ResultRejected, match="output dir"):
        check_result({"artifacts": {"model": "out/link.onnx"}, "report": VALID_REPORT}, workdir)


def test_result_without_a_model_artifact_is_rejected(workdir: Path) -> None:
    with pytest.raises(ResultRejected, match="model"):
        check_result({"artifacts": {}, "report": VALID_REPORT}, workdir)


def test_artifact_name_that_is_not_a_plain_name_is_rejected(workdir: Path) -> None:
    artifacts = {"model": "out/model.onnx", "../x": "out/model.onnx"}

    with pytest.raises(ResultRejected, match="plain lowercase name"):
        check_result({"artifacts": artifacts, "report": VALID_REPORT}, workdir)
