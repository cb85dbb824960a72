"""A refusal names what the user typed: the flag, the file, or the field in the --spec file.
No server: the problems are the server's shapes, the flags parsed by `shears submit`'s own
parser."""

from typing import Any

import pytest

from shears_client.cli import submit_parser
from shears_client.http import ApiError
from shears_client.problems import print_problem


def refusal(field: str, message: str = "wrong", upload_flag: str | None = None) -> ApiError:
    problem: dict[str, Any] = {"errors": [{"field": field, "message": message}]}
    error = ApiError(422, "Unprocessable Entity", f"{field}: {message}", problem)
    error.upload_flag = upload_flag
    return error


def told(capsys: pytest.CaptureFixture[str], exc: ApiError, *argv: str) -> str:
    print_problem(exc, submit_parser().parse_args(["model.onnx", *argv]))
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "argv", "name"),
    [
        ("spec.retrain.lr", ["--epochs", "3", "--lr", "50"], "--lr"),
        ("spec.retrain.validation_split", ["--validation-split", "0.9"], "--validation-split"),
        ("spec.retrain.dataset_id", ["--epochs", "3", "--data", "ds_x"], "--data"),
        ("spec.calibration", ["--method", "obd"], "--data"),
        ("spec.evaluation.dataset_id", ["--eval-data", "ds_t", "--data", "ds_x"], "--eval-data"),
        ("spec.evaluation.dataset_id", ["--evaluate", "accuracy", "--data", "ds_x"], "--data"),
        ("spec.layers.exclude[0]", ["--exclude", "fc*"], "--exclude"),
        ("Idempotency-Key", ["--idempotency-key", "k"], "--idempotency-key"),
        ("model_id", [], "model.onnx"),
    ],
)
def test_a_refused_field_is_named_by_the_flag_that_set_it(
    capsys: pytest.CaptureFixture[str], field: str, argv: list[str], name: str
) -> None:
    assert told(capsys, refusal(field), *argv) == f"error: {name}: wrong\n"


def test_a_field_the_spec_file_set_is_named_in_that_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --lr has a default; only a typed --lr would have set the file's retrain.lr.
    said = told(capsys, refusal("spec.retrain.lr"), "--spec", "spec.json", "--epochs", "3")
    assert said == "error: spec.retrain.lr in spec.json: wrong\n"


def test_a_refused_dataset_upload_names_the_flag_and_its_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exc = refusal("file", "not an .npz file", upload_flag="--eval-data")
    said = told(capsys, exc, "--eval-data", "held-out.npz")
    assert said == "error: --eval-data held-out.npz: not an .npz file\n"


def test_a_problem_without_fields_is_told_once_by_its_detail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exc = ApiError(413, "Content Too Large", "the upload is over 2 GiB", {})
    assert told(capsys, exc) == "error: 413 Content Too Large: the upload is over 2 GiB\n"
