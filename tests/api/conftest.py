"""The API over real HTTP: `shears api` under uvicorn on 127.0.0.1, httpx as the client.

Most tests share one stack for the session: the API and a worker that consumes only the
inspect queue, so uploads get validated by the real engine while jobs stay `queued` (nobody
runs them), which is what tests of createJob, cancel and pagination need. Tests that need
other settings start their own API with `start_api(shears_env(...))`.
"""

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_http import SharedStack, upload_model

from tests.support import models
from tests.support.processes import scoped_registry
from tests.support.shears import (
    shears_env,
    start_api,
    start_worker,
    wait_until_worker_ready,
)


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    root = tmp_path_factory.mktemp("shared-stack")
    env = shears_env(root / "data", inspect_wait_s=60)
    with scoped_registry(root / "logs") as registry:
        worker = start_worker(registry, env, queues=("shears.inspect",), wait=False)
        api = start_api(registry, env)
        wait_until_worker_ready(worker)
        yield SharedStack(api=api, data_dir=root / "data")


@pytest.fixture
def http(shared_stack: SharedStack) -> Iterator[httpx.Client]:
    with shared_stack.client() as client:
        yield client


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "onnx": models.tiny_onnx(folder / "mlp.onnx"),
        "torchscript": models.tiny_torchscript(folder / "mlp.pt"),
        "scripted": _scripted_torchscript(folder / "scripted.pt"),
    }


def _scripted_torchscript(path: Path) -> Path:
    """torch.jit.script, not trace: the saved file records no input shapes."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        torch.jit.script(models.make_mlp()).save(str(path))  # type: ignore[no-untyped-call]
    return path


@pytest.fixture(scope="session")
def onnx_model(shared_stack: SharedStack, model_files: dict[str, Path]) -> dict[str, Any]:
    """A validated (`ready`) tiny ONNX MLP in the shared stack."""
    with shared_stack.client() as client:
        return upload_model(client, model_files["onnx"], expect=201)
