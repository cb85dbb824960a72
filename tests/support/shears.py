"""Shears' own processes for tests: `shears worker`, `shears api`, `shears serve`.

They are started exactly as an operator would start them (`python -m shears_cli ...`), with
settings only from `SHEARS_*` environment variables.
"""

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.processes import (
    REPO_ROOT,
    ManagedProcess,
    ProcessRegistry,
    free_port,
    python_argv,
)

BOTH_QUEUES = ("shears.jobs", "shears.inspect")
# Celery logs "celery@<node> ready." once the consumer is up (celery/apps/worker.py).
_WORKER_READY = re.compile(r"@\S+ ready\.")
STARTUP_TIMEOUT_S = 90.0

# Kept from the caller's environment; every SHEARS_* variable is dropped so a developer's
# own settings never leak into a test.
_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "VIRTUAL_ENV", "SYSTEMROOT")


def shears_env(
    data_dir: Path,
    *,
    broker_url: str | None = None,
    database_url: str | None = None,
    **settings: object,
) -> dict[str, str]:
    """The environment of a Shears process: `data_dir`, optional broker and database URLs,
    and any other setting by its field name (`lease_s=5` -> `SHEARS_LEASE_S=5`)."""
    env = {k: v for k, v in os.environ.items() if k in _KEEP}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    # Two cores on the CI machines: one thread per engine process keeps jobs side by side.
    env["OMP_NUM_THREADS"] = "1"
    env["SHEARS_DATA_DIR"] = str(data_dir)
    # `shears api` runs a process per core by default; a test asks for more when it is about
    # them (the rest would start, and stop, twice the processes).
    env["SHEARS_API_WORKERS"] = "1"
    if broker_url is not None:
        env["SHEARS_BROKER_URL"] = broker_url
    if database_url is not None:
        env["SHEARS_DATABASE_URL"] = database_url
    for name, value in settings.items():
        env[f"SHEARS_{name.upper()}"] = str(value)
    return env


@dataclass
class ApiServer:
    """An HTTP endpoint of `shears api` or `shears serve`."""

    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 30.0, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, **kwargs)  # type: ignore[arg-type]

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


def start_worker(
    registry: ProcessRegistry,
    env: Mapping[str, str],
    queues: Sequence[str] = BOTH_QUEUES,
    concurrency: int = 1,
    wait: bool = True,
) -> ManagedProcess:
    """`shears worker`, a real Celery worker; returns once Celery reports it ready."""
    argv = python_argv(
        "-m", "shears_cli", "worker",
        "--concurrency", str(concurrency),
        "--queues", ",".join(queues),
        "--loglevel", "info",
    )  # fmt: skip
    process = registry.start("worker", argv, env)
    if wait:
        wait_until_worker_ready(process)
    return process


def wait_until_worker_ready(process: ManagedProcess) -> None:
    process.wait_for(
        lambda: _WORKER_READY.search(process.log()) is not None,
        timeout=STARTUP_TIMEOUT_S,
        what="ready (Celery's 'ready.' line)",
    )


def start_api(registry: ProcessRegistry, env: Mapping[str, str]) -> ApiServer:
    """`shears api` on 127.0.0.1 and a free port; returns once /healthz answers 200."""
    return _start_http(registry, env, "api")


def start_serve(registry: ProcessRegistry, env: Mapping[str, str]) -> ApiServer:
    """`shears serve` (API plus its own worker, embedded broker unless env names one)."""
    return _start_http(registry, env, "serve")


def _start_http(registry: ProcessRegistry, env: Mapping[str, str], command: str) -> ApiServer:
    port = free_port()
    argv = python_argv("-m", "shears_cli", command, "--host", "127.0.0.1", "--port", str(port))
    server = ApiServer(process=registry.start(command, argv, env), port=port)
    server.process.wait_for(server.healthy, timeout=STARTUP_TIMEOUT_S, what="healthy on /healthz")
    return server


@dataclass
class Stack:
    """An API, its workers, and the settings they share."""

    env: dict[str, str]
    data_dir: Path
    api: ApiServer
    workers: list[ManagedProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.api.url

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return self.api.client(timeout=timeout)
