"""`shears submit / jobs / report` as a CI step runs them: a real process against a real
server, judged by exit code, files and what it prints."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def shears(*args: str, server: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shears_cli", *args, "--server", server, "--quiet"]
        if args[0] == "submit"
        else [sys.executable, "-m", "shears_cli", *args, "--server", server],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        check=False,
    )


def test_submit_wait_prunes_and_fetches_every_artifact(
    server: ApiServer, model_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = shears(
        "submit",
        str(model_file),
        "--sparsity",
        "0.5",
        "--outputs",
        "model,sparse_npz",
        "--wait",
        "-o",
        str(out),
        server=server.url,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert {p.name for p in out.iterdir()} == {
        "model.onnx",
        "sparse_npz.npz",
        "report.json",
        "report_html.html",
    }
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)
    session = ort.InferenceSession(str(out / "model.onnx"))
    batch = np.zeros((2, *session.get_inputs()[0].shape[1:]), np.float32)
    assert session.run(None, {session.get_inputs()[0].name: batch})[0].shape[0] == 2


def test_submit_of_a_bad_spec_exits_2_naming_the_field(server: ApiServer, model_file: Path) -> None:
    done = shears(
        "submit",
        str(model_file),
        "--sparsity",
        "0.5",
        "--exclude",
        "nothing*",
        "--wait",
        server=server.url,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()  # once: not again as the problem's detail
    assert line.startswith("error: --exclude: ")
    assert "spec.layers" not in line


def test_a_field_from_the_spec_file_is_named_in_that_file(
    server: ApiServer, model_file: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"sparsity": 0.5, "layers": {"exclude": ["nothing*"]}}))
    done = shears("submit", str(model_file), "--spec", str(spec), server=server.url)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: spec.layers.exclude[0] in {spec}: ")


def test_a_method_that_needs_data_without_it_names_the_data_flag(
    server: ApiServer, model_file: Path
) -> None:
    done = shears(
        "submit", str(model_file), "--method", "obd", "--sparsity", "0.5", server=server.url
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: --data: "), line


def test_a_dataset_given_as_the_model_is_refused_as_a_dataset(
    server: ApiServer, data_file: Path
) -> None:
    done = shears("submit", str(data_file), "--sparsity", "0.5", server=server.url)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {data_file}: ")
    assert "NumPy archive (.npz)" in line and "a dataset, not a model" in line


def test_unreachable_server_exits_3(model_file: Path) -> None:
    done = shears("submit", str(model_file), "--sparsity", "0.5", server="http://127.0.0.1:9")
    assert done.returncode == 3
    assert "cannot reach" in done.stderr


def test_jobs_lists_and_report_prints_a_finished_job(
    server: ApiServer, model_file: Path, tmp_path: Path
) -> None:
    submitted = shears("submit", str(model_file), "--sparsity", "0.3", server=server.url)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("job_")
    listed = shears("jobs", server=server.url)
    assert listed.returncode == 0 and job_id in listed.stdout
    page = tmp_path / "page.html"
    for _ in range(120):
        shown = shears("report", job_id, "--html", str(page), server=server.url)
        if shown.returncode == 0:
            break
        assert "409" in shown.stderr  # not finished yet: a conflict, said plainly
    assert page.read_text().startswith("<!DOCTYPE html>")
    printed = shears("report", job_id, server=server.url)
    assert json.loads(printed.stdout)["sparsity"]["target"] == 0.3


def test_jobs_into_a_reader_that_stopped_reading_exits_quietly(
    server: ApiServer, model_file: Path
) -> None:
    assert shears("submit", str(model_file), "--sparsity", "0.3", server=server.url).returncode == 0
    # `shears jobs | head -1` once head has exited: every write meets a closed pipe.
    listing = subprocess.Popen(
        [sys.executable, "-m", "shears_cli", "jobs", "--server", server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.close()
    stderr = listing.stderr.read().decode()
    assert listing.wait(timeout=60) == 0
    assert stderr == ""


def samples_npz(path: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, 16)).astype(np.float32)
    np.savez(path, x=x, labels=rng.integers(0, 4, count).astype(np.int64))
    return path


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs for the tiny MLP (16 features) with class labels for its 4 outputs."""
    return samples_npz(tmp_path_factory.mktemp("data") / "data.npz", 96, seed=0)


def test_submit_with_data_uploads_it_for_calibration_and_evaluation(
    server: ApiServer, model_file: Path, data_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = shears(
        "submit",
        str(model_file),
        *("--method", "obd", "--sparsity", "0.5", "--data", str(data_file)),
        *("--evaluate", "accuracy", "--wait", "-o", str(out)),
        server=server.url,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    dataset_id = report["calibration"]["dataset_id"]
    assert dataset_id.startswith("ds_")
    assert report["quality"]["metric"]["dataset_id"] == dataset_id
    assert report["quality"]["metric"]["name"] == "accuracy"


def test_submit_with_epochs_retrains_on_the_data_through_a_gradual_schedule(
    server: ApiServer, model_file: Path, data_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = shears(
        "submit",
        str(model_file),
        *("--sparsity", "0.6", "--schedule", "gradual", "--epochs", "2"),
        *("--data", str(data_file), "--wait", "-o", str(out)),
        server=server.url,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["schedule"]["kind"] == "gradual"
    assert report["training"]["curve"][-1]["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert report["sparsity"]["achieved"] == pytest.approx(0.6, abs=0.01)
    # Unset, the flags shared with `shears prune` leave the defaults to the server: the same.
    assert report["training"]["lr"] == 1e-3
    assert report["training"]["samples"]["validation"] == 0


def test_submit_with_a_learned_method_trains_it_on_the_data(
    server: ApiServer, model_file: Path, data_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = shears(
        "submit",
        str(model_file),
        *("--method", "l0", "--sparsity", "0.5", "--epochs", "2"),
        *("--data", str(data_file), "--wait", "-o", str(out)),
        server=server.url,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["learned"]["method"] == "l0"
    assert report["training"]["dataset_id"].startswith("ds_")
    assert report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held-out samples for the tiny MLP: other inputs than data_file's, as many as 40."""
    return samples_npz(tmp_path_factory.mktemp("data") / "held-out.npz", 40, seed=1)


def test_submit_retrains_on_data_and_measures_on_held_out_eval_data(
    server: ApiServer, model_file: Path, data_file: Path, eval_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = shears(
        "submit",
        str(model_file),
        *("--sparsity", "0.6", "--schedule", "gradual", "--epochs", "2", "--data", str(data_file)),
        *("--lr", "0.01", "--validation-split", "0.25", "--eval-data", str(eval_file)),
        *("--wait", "-o", str(out)),
        server=server.url,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["lr"] == 0.01
    assert report["training"]["samples"] == {"train": 72, "validation": 24}
    metric = report["quality"]["metric"]
    assert (metric["name"], metric["samples"], metric["in_sample"]) == ("accuracy", 40, False)


def test_submit_measures_accuracy_on_eval_data_without_any_other_data(
    server: ApiServer, model_file: Path, eval_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = shears(
        "submit",
        str(model_file),
        *("--sparsity", "0.5", "--eval-data", str(eval_file)),
        *("--wait", "-o", str(out)),
        server=server.url,
    )
    assert done.returncode == 0, done.stderr
    metric = json.loads((out / "report.json").read_text())["quality"]["metric"]
    assert (metric["name"], metric["samples"], metric["in_sample"]) == ("accuracy", 40, False)


def test_submit_with_a_learning_rate_but_no_retraining_is_refused_before_uploading(
    server: ApiServer, model_file: Path
) -> None:
    done = shears("submit", str(model_file), "--sparsity", "0.5", "--lr", "0.1", server=server.url)
    assert done.returncode == 2
    assert "--lr would go unused" in done.stderr


def test_submit_with_epochs_but_no_data_is_refused_before_uploading(
    server: ApiServer, model_file: Path
) -> None:
    done = shears(
        "submit", str(model_file), "--sparsity", "0.5", "--epochs", "3", server=server.url
    )
    assert done.returncode == 2
    assert "--data" in done.stderr


def test_submit_passes_the_callback_to_the_server_which_refuses_a_loopback_url(
    server: ApiServer, model_file: Path
) -> None:
    # This server does not allow private callback addresses (the default): the refusal
    # naming the field shows the flags reached createJob.
    done = shears(
        "submit",
        str(model_file),
        *("--sparsity", "0.5", "--callback-url", "http://127.0.0.1:9/hook"),
        *("--callback-secret", "whsec_" + "QUJD" * 8),
        server=server.url,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --callback-url: ")


def test_submit_with_data_that_nothing_would_read_is_refused_before_uploading(
    server: ApiServer, model_file: Path, data_file: Path
) -> None:
    done = shears(
        "submit", str(model_file), "--sparsity", "0.5", "--data", str(data_file), server=server.url
    )
    assert done.returncode == 2
    assert "--data would go unused" in done.stderr
