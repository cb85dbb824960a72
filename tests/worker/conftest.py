"""A real SQLite job store and blob store for the worker's functions (models: tests/support)."""

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shears_config import Settings
from worker.context import WorkerContext


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., WorkerContext]:
    """`make_ctx(job_time_limit_s=1)`: a worker context on a fresh data dir."""

    def make(**overrides: Any) -> WorkerContext:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "lease_s": 30.0,
            "job_time_limit_s": 120.0,
            "inspect_time_limit_s": 60.0,
            **overrides,
        }
        return WorkerContext.from_settings(Settings(**values))

    return make


@pytest.fixture
def ctx(make_ctx: Callable[..., WorkerContext]) -> WorkerContext:
    return make_ctx()


@pytest.fixture
def in_background() -> Iterator[Callable[..., Future[Any]]]:
    """Run a function in a thread (as a pool process would) while the test acts on it."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool.submit
