"""The Celery app: JSON only, late acks, prefetch 1, time limits, routes (RELIABILITY.md).

The job store holds all state, so there is no result backend. Checked against Celery 5.7 and
kombu 5.7 as installed:
- kombu's Redis channel reads `visibility_timeout` from `broker_transport_options`
  (kombu/transport/redis.py, `Channel.from_transport_options`); Celery reads it nowhere else.
  The filesystem transport has no visibility timeout: an unacked message lives in the
  worker's memory and is restored on a polite shutdown, lost on kill -9 (the job row is not:
  its lease expires and the API's reconciler re-enqueues it).
- `worker_soft_shutdown_timeout` exists since 5.5 (celery/worker/worker.py) and applies on a
  cold shutdown (SIGQUIT, or SIGTERM with REMAP_SIGTERM=SIGQUIT as the compose file sets):
  running tasks get that long, then are cancelled and their late-acked messages requeued.
"""

import logging
from functools import lru_cache
from typing import Any

from celery import Celery, signals
from kombu.entity import Exchange, Queue

from shears_config import (
    INSPECT_QUEUE,
    JOB_QUEUE,
    TASK_INSPECT_MODEL,
    TASK_RUN_JOB,
    Settings,
    broker_settings,
    get_settings,
)
from shears_config.logging import configure_logging

# Our own wall clock (settings.job_time_limit_s) ends the child first and reports `timeout`;
# the soft limit leaves time to store artifacts after it, the hard limit kills a stuck pool
# process after that.
SOFT_LIMIT_GRACE_S = 60.0
HARD_LIMIT_GRACE_S = 30.0
# compose's stop_grace_period (90 s) must stay above this, or Docker's SIGKILL comes first.
SOFT_SHUTDOWN_TIMEOUT_S = 30.0


def time_limits(child_limit_s: float) -> tuple[float, float]:
    """(soft, hard) Celery limits for a task whose child may run `child_limit_s`."""
    soft = child_limit_s + SOFT_LIMIT_GRACE_S
    return soft, soft + HARD_LIMIT_GRACE_S


def celery_config(settings: Settings) -> dict[str, Any]:
    job_soft, job_hard = time_limits(settings.job_time_limit_s)
    inspect_soft, inspect_hard = time_limits(settings.inspect_time_limit_s)
    config: dict[str, Any] = {
        **broker_settings(settings),
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": job_soft,
        "task_time_limit": job_hard,
        "task_annotations": {
            TASK_INSPECT_MODEL: {"soft_time_limit": inspect_soft, "time_limit": inspect_hard}
        },
        "task_queues": (_queue(JOB_QUEUE), _queue(INSPECT_QUEUE)),
        "task_default_queue": JOB_QUEUE,
        "task_routes": {
            TASK_RUN_JOB: {"queue": JOB_QUEUE},
            TASK_INSPECT_MODEL: {"queue": INSPECT_QUEUE},
        },
        # A lost broker connection may redeliver a running job elsewhere; stop this copy
        # (RELIABILITY.md; its lease would refuse its writes anyway).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": SOFT_SHUTDOWN_TIMEOUT_S,
        "broker_connection_retry_on_startup": True,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }
    _check_visibility_timeout(config, max(job_hard, inspect_hard))
    return config


def _queue(name: str) -> Queue:
    """Exchange and routing key named after the queue, as Celery creates a missing queue for
    the API's `send_task(..., queue=name)`. A bare `Queue(name)` would take the default
    exchange and routing key (those of the first queue) and bind both queues to one key."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)  # type: ignore[no-untyped-call]


def _check_visibility_timeout(config: dict[str, Any], hard_limit_s: float) -> None:
    """Redis redelivers an unacked message after the visibility timeout (1 hour by default,
    celery#7651): it must exceed the longest a task may run, or a running job gets a second
    copy (celery#5935)."""
    if not str(config["broker_url"]).startswith(("redis", "rediss", "sentinel")):
        return
    visibility = config["broker_transport_options"].get("visibility_timeout", 3600)
    if visibility <= hard_limit_s:
        raise ValueError(
            f"broker visibility_timeout {visibility} s must exceed the hard time limit "
            f"{hard_limit_s} s"
        )


def create_app(settings: Settings | None = None) -> Celery:
    # A receiver of setup_logging tells Celery to leave logging alone (celery/app/log.py):
    # its lines then take our format (shears_config/logging.py), and it does not redirect
    # stdout into a logger.
    signals.setup_logging.connect(_keep_our_logging, weak=False)
    signals.worker_process_init.connect(_start_warm_child, weak=False)
    app = Celery("shears", set_as_current=False)
    app.conf.update(celery_config(settings or get_settings()))
    # Registers the shared tasks on every app, this one included.
    import worker.tasks  # noqa: F401

    app.finalize(auto=True)
    return app


def _keep_our_logging(**_: Any) -> None:
    """`shears worker` configured logging before starting Celery; keep that, with the
    settings' level rather than Celery's --loglevel."""
    if not logging.getLogger().handlers:  # a worker started some other way
        settings = get_settings()
        configure_logging(settings.log_format, settings.log_level)


def _start_warm_child(**_: Any) -> None:
    """In each pool process, as it starts: the first job's engine child is already warm."""
    from worker import warm
    from worker.workdir import work_root

    warm.enable(work_root(get_settings().data_dir))


@lru_cache(maxsize=1)
def default_app() -> Celery:
    return create_app()


def __getattr__(name: str) -> Celery:
    """`worker.celery_app.app` (what `celery -A worker.celery_app` and `shears worker` use),
    built on first use: importing this module must not read settings or create the broker
    folders under a relative data dir."""
    if name == "app":
        return default_app()
    raise AttributeError(name)
