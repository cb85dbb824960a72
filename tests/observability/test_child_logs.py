"""The engine's sandboxed child logs like its worker, with the ids of the job it runs."""

import json
from pathlib import Path

from shears_config.logging import log_context
from worker import protocol
from worker.protocol import ChildError
from worker.sandbox import Limits
from worker.supervisor import run_child
from worker.workdir import private_workdir


def test_child_lines_are_json_with_the_job_ids_and_the_error_as_text(tmp_path: Path) -> None:
    with private_workdir(tmp_path, "job-x") as workdir:
        model = Path(protocol.INPUT_DIR) / "model.onnx"
        (workdir / model).write_bytes(b"not an onnx model")
        request = {"kind": "inspect", "model": str(model), "format": "onnx"}
        with log_context(job_id="job_x", attempt=2, request_id="req-9"):
            ending = run_child(workdir, request, Limits(8 * 1024**3, 120.0))
        lines = (workdir / protocol.LOG_FILE).read_text().splitlines()

    assert isinstance(ending, ChildError) and ending.code == "invalid_model", ending
    documents = [json.loads(line) for line in lines]
    assert documents, "the child logged its failure"
    for document in documents:
        assert (document["job_id"], document["attempt"], document["request_id"]) == (
            "job_x",
            2,
            "req-9",
        )
    assert any("invalid_model" in d["message"] and "exc_info" in d for d in documents)
