"""Pytest fixtures that start real processes; registered for every test by tests/conftest.py.

    def test_job_runs(redis_server, make_stack):
        stack = make_stack(broker_url=redis_server.url, workers=2)
        with stack.client() as http: ...

Fixtures fail (never skip) when redis-server or PostgreSQL is missing.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support import s3_server as s3_server_module
from tests.support import shears
from tests.support.models import tiny_onnx, tiny_torchscript
from tests.support.postgres import private_database
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.redis_server import RedisServer
from tests.support.s3_server import S3Server
from tests.support.shears import BOTH_QUEUES, ApiServer, Stack

_REGISTRY = pytest.StashKey[ProcessRegistry]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach every process log of a failed test to its report."""
    report = yield
    registry = item.stash.get(_REGISTRY, None)
    if report.failed and registry is not None:
        for title, text in registry.report():
            report.sections.append((f"process log: {title}", text))
    return report


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProcessRegistry]:
    """Where a test's processes are started; all are stopped (process groups) afterwards."""
    registry = ProcessRegistry(log_dir=tmp_path / "logs")
    request.node.stash[_REGISTRY] = registry
    try:
        yield registry
    finally:
        registry.stop_all()


@pytest.fixture
def redis_server(processes: ProcessRegistry, tmp_path: Path) -> RedisServer:
    """A private, started redis-server (AOF on): `.url`, `.client()`, `.restart()`, `.kill()`."""
    return RedisServer(registry=processes, data_dir=tmp_path / "redis").start()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh database (local or private PostgreSQL), dropped afterwards."""
    with private_database() as url:
        yield url


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """moto's S3 server, one per session: `.endpoint_url`, `.new_bucket()`, `.keys(bucket)`,
    `.settings(bucket)` (blob_url and s3_endpoint_url for `shears_env`)."""
    return s3_server_module.s3_server()


@pytest.fixture
def shears_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """Factory: `shears_env(broker_url=..., database_url=..., lease_s=5)` -> env dict with a
    fresh data dir under tmp_path (a new one per call)."""
    count = 0

    def make(**kwargs: Any) -> dict[str, str]:
        nonlocal count
        count += 1
        data_dir = Path(kwargs.pop("data_dir", tmp_path / f"data{count}"))
        data_dir.mkdir(parents=True, exist_ok=True)
        return shears.shears_env(data_dir, **kwargs)

    return make


@pytest.fixture
def start_worker(processes: ProcessRegistry) -> Callable[..., ManagedProcess]:
    """`start_worker(env, queues=BOTH_QUEUES, concurrency=1)` -> a ready `shears worker`."""

    def start(
        env: Mapping[str, str],
        queues: Sequence[str] = BOTH_QUEUES,
        concurrency: int = 1,
        wait: bool = True,
    ) -> ManagedProcess:
        return shears.start_worker(processes, env, queues, concurrency, wait)

    return start


@pytest.fixture
def start_api(processes: ProcessRegistry) -> Callable[[Mapping[str, str]], ApiServer]:
    """`start_api(env)` -> ApiServer (`.url`, `.client()`) once /healthz answers."""
    return lambda env: shears.start_api(processes, env)


@pytest.fixture
def start_serve(processes: ProcessRegistry) -> Callable[[Mapping[str, str]], ApiServer]:
    """`start_serve(env)` -> ApiServer of `shears serve` (API and worker in one command)."""
    return lambda env: shears.start_serve(processes, env)


@pytest.fixture
def make_stack(
    processes: ProcessRegistry, shears_env: Callable[..., dict[str, str]]
) -> Callable[..., Stack]:
    """Factory: `make_stack(broker_url=redis_server.url, database_url=None, workers=1,
    concurrency=1, **settings)` -> Stack with the API and `workers` ready workers sharing a
    fresh data dir (SQLite there unless `database_url` is given)."""

    def make(*, workers: int = 1, concurrency: int = 1, **kwargs: Any) -> Stack:
        env = shears_env(**kwargs)
        started = [
            shears.start_worker(processes, env, BOTH_QUEUES, concurrency, wait=False)
            for _ in range(workers)
        ]
        api = shears.start_api(processes, env)
        for worker in started:
            shears.wait_until_worker_ready(worker)
        return Stack(env=env, data_dir=Path(env["SHEARS_DATA_DIR"]), api=api, workers=started)

    return make


@pytest.fixture
def stack(redis_server: RedisServer, make_stack: Callable[..., Stack]) -> Stack:
    """The usual deployment in miniature: private Redis, SQLite, the API, one worker."""
    return make_stack(broker_url=redis_server.url)


@pytest.fixture(scope="session")
def onnx_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MLP exported from torch to ONNX: input `x` [batch, 16], output `y` [batch, 4]."""
    return tiny_onnx(tmp_path_factory.mktemp("models") / "mlp.onnx")


@pytest.fixture(scope="session")
def torchscript_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same MLP traced to TorchScript; jobs need `input_shapes={"x": [1, 16]}`."""
    return tiny_torchscript(tmp_path_factory.mktemp("models") / "mlp.pt")
