"""One `shears serve` (embedded broker, real worker) for the client tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import scoped_registry
from tests.support.shears import ApiServer, shears_env, start_serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("client-server")
    with scoped_registry(root / "logs") as registry:
        yield start_serve(registry, shears_env(root / "data"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.models import tiny_onnx

    return tiny_onnx(tmp_path_factory.mktemp("models") / "mlp.onnx")
