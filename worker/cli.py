"""`shears worker`: a Celery worker (prefork pool) consuming the job and inspection queues.

Settings come from SHEARS_* variables: with no SHEARS_BROKER_URL the embedded filesystem
transport under SHEARS_DATA_DIR is used, so `shears serve` needs no Redis.
"""

import argparse
import logging
import os

from shears_config import INSPECT_QUEUE, JOB_QUEUE, Settings, get_settings
from shears_config.logging import configure_logging
from storage import connect
from worker.workdir import remove_stale_workdirs

log = logging.getLogger(__name__)


def main(args: list[str]) -> int:
    options = _parser().parse_args(args)
    # Before Celery (billiard) is imported, which reads it once: SIGTERM from docker stop,
    # systemd, Kubernetes or `shears serve` then starts the cold shutdown with Celery's soft
    # shutdown (running jobs get SOFT_SHUTDOWN_TIMEOUT_S, then are cancelled and requeued)
    # instead of a warm shutdown that waits for an hour-long job and ends in SIGKILL.
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    _prepare(settings)
    from worker.celery_app import app

    if settings.uses_embedded_broker:
        # Remote control is a fanout over the broker; on the filesystem transport its
        # per-worker queues would only pile up files nobody reads.
        app.conf.worker_enable_remote_control = False
    try:
        app.worker_main(_celery_argv(options, quiet=settings.log_format == "json"))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shears worker", description=__doc__)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="pool processes, i.e. engine children at once (default 2)",
    )
    parser.add_argument(
        "--queues",
        default=f"{JOB_QUEUE},{INSPECT_QUEUE}",
        help=f"comma-separated queues (default {JOB_QUEUE},{INSPECT_QUEUE})",
    )
    parser.add_argument("--loglevel", default="info")
    parser.add_argument(
        "--hostname",
        default=f"shears-{os.getpid()}@%h",
        help="Celery node name; unique by default so several workers can share a host",
    )
    return parser


def _prepare(settings: Settings) -> None:
    """Create the tables once here, before the pool forks (storage.connect does it), and
    clear work dirs a killed worker left behind."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    connect(settings.resolved_database_url).engine.dispose()
    remove_stale_workdirs(settings.data_dir, older_than_s=settings.job_time_limit_s + 3600)


def _celery_argv(options: argparse.Namespace, quiet: bool) -> list[str]:
    if quiet:
        # Celery's banner is plain text on stdout; with JSON logs one line says the same.
        log.info(
            "starting a worker: queues %s, concurrency %d", options.queues, options.concurrency
        )
    return [
        # Before the sub-command: a global option of the `celery` command.
        *(["--quiet"] if quiet else []),
        "worker",
        # Prefork: a pool process only supervises; the engine runs in a fresh child per job
        # (worker/sandbox.py), so torch and ONNX Runtime memory never outlives a job and
        # tenants never share an engine process. That is why worker_max_tasks_per_child is
        # not set: RELIABILITY.md's "or a fresh child process per job" is what we do.
        "--pool=prefork",
        f"--concurrency={options.concurrency}",
        f"--queues={options.queues}",
        f"--loglevel={options.loglevel}",
        f"--hostname={options.hostname}",
        # Mingle and gossip talk between workers over the broker at startup and while
        # running; the job store, not worker state, decides what runs.
        "--without-mingle",
        "--without-gossip",
    ]
