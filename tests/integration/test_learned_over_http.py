"""Learned sparsity as a client drives it (issue 16): upload a digits MLP as ONNX and
TorchScript and an `.npz` training set, run `l0` with labels on ONNX and `movement` by
distillation on TorchScript, download the pruned models and count their zeros here: exactly
the asked sparsity, with the learned density and its trajectory in the report and plotted in
report.html. A learned method without `retrain` is a 422 naming `spec.retrain`."""

import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from sklearn.datasets import load_digits
from torch import nn

from tests.support.api_client import create_job, upload_model, wait_for_job, wait_for_model
from tests.support.models import fast_spec
from tests.support.processes import scoped_registry
from tests.support.redis_server import RedisServer
from tests.support.shears import Stack, shears_env, start_api, start_worker, wait_until_worker_ready

pytestmark = pytest.mark.integration

JOB_TIMEOUT_S = 180.0
INPUT = "input"  # nn.Sequential's forward argument, as torch.jit.trace records it
WEIGHTS = ("1.weight", "3.weight")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), data.target.astype(np.int64)


@pytest.fixture(scope="module")
def model_files(
    digits: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    x, y = torch.from_numpy(digits[0]), torch.from_numpy(digits[1])
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(5):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    net.eval()
    folder = tmp_path_factory.mktemp("learned-models")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (x[:1],),
            str(folder / "mlp.onnx"),
            input_names=[INPUT],
            output_names=["logits"],
            dynamic_axes={INPUT: {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
            do_constant_folding=False,
        )
        torch.jit.trace(net, x[:1]).save(str(folder / "mlp.pt"))
    return {"onnx": folder / "mlp.onnx", "torchscript": folder / "mlp.pt"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("learned-stack")
    with scoped_registry(root / "logs") as registry:
        redis = RedisServer(registry=registry, data_dir=root / "redis").start()
        env = shears_env(root / "data", broker_url=redis.url)
        worker = start_worker(registry, env, wait=False)
        api = start_api(registry, env)
        wait_until_worker_ready(worker)
        yield Stack(env=env, data_dir=root / "data", api=api, workers=[worker])


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def _dataset(http: httpx.Client, **arrays: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    response = http.post("/v1/datasets", files={"file": ("digits.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _model(http: httpx.Client, path: Path) -> str:
    model = wait_for_model(http, upload_model(http, path)["id"])
    assert model["status"] == "ready", model
    return str(model["id"])


def _weights(content: bytes, fmt: str) -> dict[str, np.ndarray]:
    if fmt == "onnx":
        graph = onnx.load_from_string(content).graph
        return {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in WEIGHTS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(content))
    return {n: v.numpy() for n, v in module.state_dict().items() if n in WEIGHTS}


@pytest.mark.parametrize(
    ("fmt", "method", "labels"),
    [("onnx", "l0", True), ("torchscript", "movement", False)],
    ids=["onnx-l0-labels", "torchscript-movement-distill"],
)
def test_a_learned_method_prunes_to_exactly_the_asked_sparsity_over_http(
    http: httpx.Client,
    model_files: dict[str, Path],
    digits: tuple[np.ndarray, np.ndarray],
    fmt: str,
    method: str,
    labels: bool,
) -> None:
    x, y = digits
    arrays = {INPUT: x[:1400], **({"labels": y[:1400]} if labels else {})}
    retrain: dict[str, Any] = {"dataset_id": _dataset(http, **arrays), "epochs": 3}
    if not labels:
        retrain["loss"] = "distill"
    spec = fast_spec(sparsity=0.9, method={"name": method}, retrain=retrain)
    if fmt == "torchscript":
        spec["input_shapes"] = {INPUT: [1, 1, 8, 8]}

    job = wait_for_job(
        http, create_job(http, _model(http, model_files[fmt]), spec)["id"], timeout=JOB_TIMEOUT_S
    )

    assert job["status"] == "succeeded", job
    content = http.get(f"/v1/jobs/{job['id']}/artifacts/model").content
    weights = _weights(content, fmt)
    assert set(weights) == set(WEIGHTS)
    total = sum(w.size for w in weights.values())
    assert sum(int((w == 0).sum()) for w in weights.values()) == round(0.9 * total)
    report = http.get(f"/v1/jobs/{job['id']}/report").json()
    learned = report["training"]["learned"]
    assert learned["method"] == method
    assert learned["gap"] == pytest.approx(learned["learned_density"] - 0.1, abs=1e-5)
    assert learned["trajectory"][0]["step"] == 0
    assert set(learned["layers"]) == set(WEIGHTS)
    html = http.get(f"/v1/jobs/{job['id']}/artifacts/report_html").text
    assert 'id="chart-learned"' in html


def test_a_learned_method_without_training_data_is_a_422_naming_retrain(
    http: httpx.Client, model_files: dict[str, Path]
) -> None:
    spec = fast_spec(sparsity=0.9, method={"name": "variational_dropout"})

    response = http.post(
        "/v1/jobs", json={"model_id": _model(http, model_files["onnx"]), "spec": spec}
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["spec.retrain"]
