"""`shears api` (the HTTP API alone) and `shears serve` (API plus a worker, one machine).

`serve` is what `make run` starts: with no SHEARS_BROKER_URL, the API and its worker share
the embedded filesystem broker under the data dir, so nothing else needs installing; that
broker serves one machine only.
"""

import argparse
import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.metrics import MULTIPROC_ENV
from service.processes import serve_processes
from shears_config import INSPECT_QUEUE, JOB_QUEUE, Settings, get_settings
from shears_config.logging import configure_logging

LOOPBACK = "127.0.0.1"
# Above the worker's 30 s soft shutdown, so it can hand running jobs back to the broker before
# we would have to kill it (a kill loses the message with the embedded transport).
WORKER_STOP_TIMEOUT_S = 45.0
# uvicorn leaves the loggers as configure_logging set them, and writes no access log of its
# own: service/request_id.py writes one line per request, with the route template and the
# request id instead of the raw path.
_UVICORN_LOGGING: dict[str, Any] = {"log_config": None, "access_log": False}


def api(args: list[str]) -> int:
    """Run the HTTP API with uvicorn; workers run separately (`shears worker`)."""
    parser = _parser("shears api", "the HTTP API alone")
    parser.add_argument(
        "--workers", type=int, help="API processes (default: SHEARS_API_WORKERS, else one per core)"
    )
    options = parser.parse_args(args)
    settings = get_settings()
    _configure_logging(settings)
    bind = _loopback_unless_keys(_bind(options, settings), settings)
    # One per core by default: a process runs its request handlers on one core at a time
    # (the GIL), and createJob is CPU-bound (docs/benchmarks.md, "Load: createJob burst").
    workers = options.workers or settings.api_workers or len(os.sched_getaffinity(0))
    if workers == 1:
        uvicorn.run(create_app(settings), host=bind.host, port=bind.port, **_UVICORN_LOGGING)
        return 0
    config = uvicorn.Config(
        "service.cli:worker_app", factory=True, host=bind.host, port=bind.port, **_UVICORN_LOGGING
    )
    with _shared_metrics_folder():
        return serve_processes(config, workers)


def worker_app() -> FastAPI:
    """The app of one of several API processes: started afresh (spawned), so it
    reads the settings and sets up logging itself."""
    settings = get_settings()
    _configure_logging(settings)
    return create_app(settings)


@contextlib.contextmanager
def _shared_metrics_folder() -> Iterator[None]:
    """Where the worker processes' HTTP counters meet (service/metrics.py), unless the
    operator named one. Set before uvicorn spawns them: prometheus_client reads it once."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="shears-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve(args: list[str]) -> int:
    """The API in this process and a real Celery worker as a child process."""
    parser = _parser("shears serve", "the API and a worker, for one machine")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    options = parser.parse_args(args)
    settings = get_settings()
    _configure_logging(settings)
    bind = _loopback_unless_keys(_bind(options, settings), settings)
    worker = _start_worker(settings, options.concurrency)
    app = create_app(settings)
    config = uvicorn.Config(app, host=bind.host, port=bind.port, **_UVICORN_LOGGING)
    server = uvicorn.Server(config)
    _announce(settings, bind, worker)
    threading.Thread(target=_stop_server_if_worker_dies, args=(worker, server), daemon=True).start()
    return _run_until_stopped(server, worker)


def _configure_logging(settings: Settings) -> None:
    """Ours and uvicorn's lines alike: JSON by default (SHEARS_LOG_FORMAT, SHEARS_LOG_LEVEL)."""
    configure_logging(settings.log_format, settings.log_level)


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", help="address to listen on (default: SHEARS_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default: SHEARS_PORT)")
    return parser


@dataclass(frozen=True)
class Bind:
    host: str
    port: int


def _bind(options: argparse.Namespace, settings: Settings) -> Bind:
    return Bind(host=options.host or settings.host, port=options.port or settings.port)


def _loopback_unless_keys(bind: Bind, settings: Settings) -> Bind:
    """Without API keys anyone who reaches the port owns every model: keep it on this host."""
    if settings.api_keys or settings.open_without_keys or _is_loopback(bind.host):
        return bind
    print(
        f"shears: no API keys configured (SHEARS_API_KEYS): binding to {LOOPBACK} instead of "
        f"{bind.host}, so only this machine can reach the API",
        flush=True,
    )
    return Bind(LOOPBACK, bind.port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _start_worker(settings: Settings, concurrency: int) -> subprocess.Popen[bytes]:
    # The child finds the same data dir (and so the same embedded broker folder) even if
    # SHEARS_DATA_DIR was relative; its own session keeps a terminal's Ctrl-C for us to pass
    # on once, instead of Celery seeing it twice (which means "cold shutdown").
    env = {**os.environ, "SHEARS_DATA_DIR": str(settings.data_dir.resolve())}
    argv = [
        sys.executable, "-m", "shears_cli", "worker",
        "--queues", f"{JOB_QUEUE},{INSPECT_QUEUE}",
        "--concurrency", str(concurrency),
    ]  # fmt: skip
    return subprocess.Popen(argv, env=env, start_new_session=True)


def _announce(settings: Settings, bind: Bind, worker: subprocess.Popen[bytes]) -> None:
    broker = (
        f"embedded filesystem broker under {settings.data_dir.resolve() / 'broker'} "
        "(one machine only; set SHEARS_BROKER_URL=redis://... to add workers elsewhere)"
        if settings.uses_embedded_broker
        else f"broker {settings.broker_url}"
    )
    print(f"shears: API on http://{bind.host}:{bind.port} (docs at /docs)", flush=True)
    print(f"shears: worker pid {worker.pid}; {broker}", flush=True)


def _stop_server_if_worker_dies(worker: subprocess.Popen[bytes], server: uvicorn.Server) -> None:
    code = worker.wait()
    if not server.should_exit:
        print(f"shears: the worker exited ({code}); stopping the API", file=sys.stderr, flush=True)
        server.should_exit = True


def _run_until_stopped(server: uvicorn.Server, worker: subprocess.Popen[bytes]) -> int:
    def stop_api(_sig: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    # uvicorn restores the handlers it found when it stops, then re-raises the signal it
    # caught: with ours in place that lands here instead of killing us before the worker is
    # down. The worker hears of it after the API has stopped taking work (_stop_worker).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_api)
    try:
        server.run()
    finally:
        _stop_worker(worker)
    return 0 if worker.returncode in (0, -signal.SIGTERM, -signal.SIGINT) else 1


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM is a cold shutdown (`shears worker` remaps it): running jobs get 30 s, then
    their children are killed, their leases released and their messages requeued."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
