"""Retraining as a client drives it (issue 4): upload a digits classifier (ONNX and
TorchScript) and `.npz` datasets, run gradual and iterative jobs that fine-tune with the masks
fixed, download the pruned model and measure it here: its accuracy must be the one the report
states and its zeros the target sparsity. Also distillation without labels, cancel during
training, and the specs that cannot work (422 naming the field).

One stack serves the whole module: starting Redis, the API and a worker per test would cost
more than the jobs themselves.
"""

import io
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from sklearn.datasets import load_digits
from torch import nn

from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import scoped_registry
from tests.support.redis_server import RedisServer
from tests.support.shears import (
    Stack,
    shears_env,
    start_api,
    start_worker,
    wait_until_worker_ready,
)

pytestmark = pytest.mark.integration

JOB_TIMEOUT_S = 180.0
TRAIN_SAMPLES = 1200
# nn.Sequential's forward argument: the name torch.jit.trace records; the ONNX export uses it too.
INPUT = "input"
TORCHSCRIPT_SHAPES = {INPUT: [1, 1, 8, 8]}


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class Uploaded:
    onnx_id: str
    torchscript_id: str
    train_id: str  # `input` + `labels`
    test_id: str  # `input` + `labels`, held out
    unlabelled_id: str  # `input` only


@pytest.fixture(scope="module")
def digits() -> Digits:
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return Digits(x[:TRAIN_SAMPLES], y[:TRAIN_SAMPLES], x[TRAIN_SAMPLES:], y[TRAIN_SAMPLES:])


def _make_convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def _trained_convnet(digits: Digits, epochs: int = 8) -> nn.Module:
    net = _make_convnet()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def model_files(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same trained conv net as ONNX (input `input`, output `logits`) and TorchScript."""
    folder = tmp_path_factory.mktemp("digits-models")
    net = _trained_convnet(digits)
    example = torch.from_numpy(digits.x_train[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(folder / "digits.onnx"),
            input_names=[INPUT],
            output_names=["logits"],
            dynamic_axes={INPUT: {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
        torch.jit.trace(net, example).save(str(folder / "digits.pt"))
    return {"onnx": folder / "digits.onnx", "torchscript": folder / "digits.pt"}


@pytest.fixture(scope="module")
def retrain_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("retrain-stack")
    with scoped_registry(root / "logs") as registry:
        redis = RedisServer(registry=registry, data_dir=root / "redis").start()
        env = shears_env(root / "data", broker_url=redis.url)
        worker = start_worker(registry, env, wait=False)
        api = start_api(registry, env)
        wait_until_worker_ready(worker)
        yield Stack(env=env, data_dir=root / "data", api=api, workers=[worker])


@pytest.fixture
def http(retrain_stack: Stack) -> Iterator[httpx.Client]:
    with retrain_stack.client() as client:
        yield client


def _upload_dataset(http: httpx.Client, **arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    response = http.post("/v1/datasets", files={"file": ("digits.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _ready(http: httpx.Client, path: Path) -> str:
    model = wait_for_model(http, upload_model(http, path)["id"])
    assert model["status"] == "ready", model
    return str(model["id"])


@pytest.fixture(scope="module")
def uploaded(retrain_stack: Stack, model_files: dict[str, Path], digits: Digits) -> Uploaded:
    with retrain_stack.client() as http:
        return Uploaded(
            onnx_id=_ready(http, model_files["onnx"]),
            torchscript_id=_ready(http, model_files["torchscript"]),
            train_id=_upload_dataset(http, **{INPUT: digits.x_train, "labels": digits.y_train}),
            test_id=_upload_dataset(http, **{INPUT: digits.x_test, "labels": digits.y_test}),
            unlabelled_id=_upload_dataset(http, **{INPUT: digits.x_train}),
        )


def _retrain(dataset_id: str, epochs: int, **extra: Any) -> dict[str, Any]:
    return {"dataset_id": dataset_id, "epochs": epochs, "lr": 2e-3, "batch_size": 64, **extra}


def _logits(content: bytes, fmt: str, x: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {INPUT: x})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        module = torch.jit.load(io.BytesIO(content))
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(x)).numpy())


def _weights(content: bytes, fmt: str) -> dict[str, np.ndarray]:
    if fmt == "onnx":
        graph = onnx.load_from_string(content).graph
        return {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(content))
    return {name: value.numpy() for name, value in module.state_dict().items()}


def _accuracy(content: bytes, fmt: str, digits: Digits) -> float:
    predicted = _logits(content, fmt, digits.x_test).argmax(axis=-1)
    return float((predicted == digits.y_test).mean())


def _epoch_events(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    events = http.get(f"/v1/jobs/{job_id}/events").json()["items"]
    return [e for e in events if e["stage"] == "retrain" and "epoch" in (e["data"] or {})]


def _check_measured_on_the_artifact(
    http: httpx.Client, job: dict[str, Any], fmt: str, digits: Digits, model_file: Path
) -> dict[str, Any]:
    """The downloaded model holds the target sparsity as exact zeros and scores what the
    report says; the report's dense score is the uploaded model's."""
    assert job["status"] == "succeeded", job
    report = dict(http.get(f"/v1/jobs/{job['id']}/report").json())
    content = http.get(f"/v1/jobs/{job['id']}/artifacts/model").content

    metric = report["quality"]["metric"]
    assert metric["name"] == "accuracy"
    assert metric["pruned"] == pytest.approx(_accuracy(content, fmt, digits), abs=1e-6)
    assert metric["dense"] == pytest.approx(
        _accuracy(model_file.read_bytes(), fmt, digits), abs=1e-6
    )
    # Fidelity on the same real samples: how often the pruned model agrees with the dense.
    agreement = np.mean(
        _logits(content, fmt, digits.x_test).argmax(axis=-1)
        == _logits(model_file.read_bytes(), fmt, digits.x_test).argmax(axis=-1)
    )
    assert metric["fidelity"]["top1_agreement"] == pytest.approx(float(agreement), abs=1e-6)
    assert metric["fidelity"]["samples"] == metric["samples"] == len(digits.y_test)

    weights = _weights(content, fmt)
    layers = report["sparsity"]["layers"]
    nonzeros = {layer["name"]: int(np.count_nonzero(weights[layer["name"]])) for layer in layers}
    assert nonzeros == {layer["name"]: layer["nonzeros"] for layer in layers}
    total = sum(layer["parameters"] for layer in layers)
    target = job["spec"]["sparsity"]
    assert 1 - sum(nonzeros.values()) / total == pytest.approx(target, abs=1 / total)
    assert report["sparsity"]["achieved"] == pytest.approx(target, abs=1 / total)
    return report


def _check_one_event_per_epoch(http: httpx.Client, job: dict[str, Any], epochs: int) -> None:
    events = _epoch_events(http, job["id"])
    assert [e["data"]["epoch"] for e in events] == list(range(1, epochs + 1))
    for event in events:
        assert np.isfinite(event["data"]["loss"])
        # The masks' own count: a global top-k rounds the target to whole weights.
        assert 0.0 <= event["data"]["sparsity"] <= job["spec"]["sparsity"] + 1e-3
    assert events[-1]["data"]["sparsity"] == pytest.approx(job["spec"]["sparsity"], abs=1e-3)


def test_gradual_on_onnx_and_iterative_on_torchscript_retrain_to_the_target_as_reported(
    http: httpx.Client, uploaded: Uploaded, digits: Digits, model_files: dict[str, Path]
) -> None:
    evaluation = {"dataset_id": uploaded.test_id, "metric": "accuracy"}
    gradual = fast_spec(
        sparsity=0.8,
        schedule={"kind": "gradual", "steps": 6},
        retrain=_retrain(uploaded.train_id, 3, validation_split=0.1),
        evaluation=evaluation,
    )
    iterative = fast_spec(
        sparsity=0.7,
        schedule={"kind": "iterative", "rounds": 2},
        retrain=_retrain(uploaded.train_id, 2),
        evaluation=evaluation,
        input_shapes=TORCHSCRIPT_SHAPES,
    )
    onnx_job = create_job(http, uploaded.onnx_id, gradual)
    script_job = create_job(http, uploaded.torchscript_id, iterative)

    for job, fmt, epochs in ((onnx_job, "onnx", 3), (script_job, "torchscript", 2)):
        done = wait_for_job(http, job["id"], timeout=JOB_TIMEOUT_S)
        report = _check_measured_on_the_artifact(http, done, fmt, digits, model_files[fmt])
        _check_one_event_per_epoch(http, done, epochs)
        training = report["training"]
        assert training["schedule"]["kind"] == job["spec"]["schedule"]["kind"]
        assert training["epochs"] == epochs
        assert len(training["curve"]) >= epochs
        assert report["timings"]["retrain_s"] > 0
        # Fine-tuning with fixed masks keeps the pruned net a working classifier.
        assert report["quality"]["metric"]["pruned"] > 0.8, report["quality"]["metric"]

    onnx_training = http.get(f"/v1/jobs/{onnx_job['id']}/report").json()["training"]
    epoch_ends = [p for p in onnx_training["curve"] if "event" not in p]
    assert len(epoch_ends) == 3 and all("val_loss" in p for p in epoch_ends)
    assert onnx_training["samples"]["validation"] == 120


def test_distillation_from_the_dense_model_needs_no_labels(
    http: httpx.Client, uploaded: Uploaded, digits: Digits, model_files: dict[str, Path]
) -> None:
    spec = fast_spec(
        sparsity=0.8,
        schedule={"kind": "gradual", "steps": 4},
        retrain=_retrain(uploaded.unlabelled_id, 2, loss="distill", temperature=2.0),
        evaluation={"dataset_id": uploaded.test_id, "metric": "accuracy"},
    )

    job = create_job(http, uploaded.onnx_id, spec)
    done = wait_for_job(http, job["id"], timeout=JOB_TIMEOUT_S)

    report = _check_measured_on_the_artifact(http, done, "onnx", digits, model_files["onnx"])
    assert report["training"]["loss"] == "distill"
    _check_one_event_per_epoch(http, done, 2)


def test_cancel_during_training_stops_the_job_and_keeps_nothing(
    http: httpx.Client, uploaded: Uploaded
) -> None:
    # Far more training than the test waits for: it can only end by being cancelled.
    spec = fast_spec(
        sparsity=0.8,
        schedule={"kind": "gradual"},
        retrain=_retrain(uploaded.train_id, 1000, batch_size=8),
    )
    job = create_job(http, uploaded.onnx_id, spec)
    _wait_until_training(http, job["id"])

    assert http.post(f"/v1/jobs/{job['id']}/cancel").status_code in (200, 202)
    done = wait_for_job(http, job["id"], timeout=60.0)

    assert done["status"] == "cancelled", done
    assert done["artifacts"] == []
    assert http.get(f"/v1/jobs/{job['id']}/artifacts/model").status_code in (404, 409)
    assert http.get(f"/v1/jobs/{job['id']}/report").status_code == 409


def _wait_until_training(http: httpx.Client, job_id: str) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    job = http.get(f"/v1/jobs/{job_id}").json()
    while job["progress"]["stage"] != "retrain":
        assert job["status"] in ("queued", "running"), job
        assert time.monotonic() < deadline, f"never reached the retrain stage: {job}"
        time.sleep(0.2)
        job = http.get(f"/v1/jobs/{job_id}").json()


def _problem(http: httpx.Client, model_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/v1/jobs", json={"model_id": model_id, "spec": spec})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


def test_retraining_specs_that_cannot_work_are_422s_naming_the_field(
    http: httpx.Client, uploaded: Uploaded
) -> None:
    unlabelled, test = uploaded.unlabelled_id, uploaded.test_id
    cases = [
        (fast_spec(sparsity=0.8, schedule={"kind": "gradual"}), "spec.retrain", "`retrain`"),
        (
            fast_spec(sparsity=0.8, retrain=_retrain(unlabelled, 2)),
            "spec.retrain.dataset_id",
            "needs a `labels` array",
        ),
        (
            fast_spec(
                sparsity=0.8,
                retrain=_retrain(unlabelled, 2, loss="distill"),
                evaluation={"dataset_id": unlabelled, "metric": "accuracy"},
            ),
            "spec.evaluation.dataset_id",
            "needs a `labels` array",
        ),
        (
            fast_spec(
                sparsity=0.8,
                schedule={"kind": "iterative", "rounds": 4},
                retrain=_retrain(test, 3),
            ),
            "spec.retrain.epochs",
            "at least 4",
        ),
    ]
    for spec, field, message in cases:
        problem = _problem(http, uploaded.onnx_id, spec)
        assert [e["field"] for e in problem["errors"]] == [field], problem
        assert message in problem["detail"], problem
