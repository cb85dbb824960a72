"""Sending work to the workers, by task name only: the API never imports the worker.

The queue carries only an id; the job store holds the truth, so a message sent twice is
harmless (the worker's claim decides) and a message lost is re-sent by the reconciler.
"""

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import redis.exceptions
from celery import Celery
from kombu.exceptions import KombuError

from service.problems import BrokerUnavailable
from shears_config import (
    INSPECT_QUEUE,
    JOB_QUEUE,
    TASK_INSPECT_MODEL,
    TASK_RUN_JOB,
    Settings,
    broker_settings,
)

_BROKER_ERRORS = (KombuError, OSError, redis.exceptions.RedisError)
# A request waits for the broker a few seconds at most, then answers 503: kombu's defaults
# retry a refused connection for seconds and a silent one for much longer.
_CONNECT_TIMEOUT_S = 3.0
_SENDER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
    "socket_connect_timeout": _CONNECT_TIMEOUT_S,
    "socket_timeout": 5.0,
}
SENDER_CONNECTIONS = 40
log = logging.getLogger("shears.api")
# One retry on a fresh connection rides over a pooled connection that Redis closed.
_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class TaskSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.celery = Celery("shears-api", set_as_current=False)
        self.celery.conf.update(_sender_conf(settings))

    def run_job(self, job_id: str) -> None:
        self._send(TASK_RUN_JOB, [job_id], JOB_QUEUE)

    def inspect_model(
        self, model_id: str, format_hint: str | None = None, request_id: str | None = None
    ) -> None:
        """`format_hint`: the format the client declared; the worker opens it as that.
        `request_id`: the request's, for the worker's log lines about this model."""
        self._send(TASK_INSPECT_MODEL, [model_id, format_hint, request_id], INSPECT_QUEUE)

    def ping(self) -> None:
        """Raise BrokerUnavailable unless the broker accepts a connection now."""
        if self.settings.uses_embedded_broker:
            _check_writable(Path(self.celery.conf.broker_transport_options["data_folder_in"]))
            return
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0, timeout=_CONNECT_TIMEOUT_S
                )
                client = getattr(conn.default_channel, "client", None)
                if client is not None:  # Redis: a PING proves it answers, not just listens
                    client.ping()
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailable(_describe(exc)) from exc

    def close(self) -> None:
        self.celery.close()

    def _send(self, name: str, args: list[str | None], queue: str) -> None:
        try:
            self.celery.send_task(
                name, args=args, queue=queue, retry=True, retry_policy=_PUBLISH_RETRY
            )
        except _BROKER_ERRORS as exc:
            log.warning("could not send %s(%s) to %s: %s", name, args[0], queue, _describe(exc))
            raise BrokerUnavailable(_describe(exc)) from exc


def _sender_conf(settings: Settings) -> dict[str, Any]:
    conf = broker_settings(settings)
    if not settings.uses_embedded_broker:
        options = {**conf.get("broker_transport_options", {}), **_SENDER_TRANSPORT_OPTIONS}
        conf["broker_transport_options"] = options
        conf["broker_connection_timeout"] = _CONNECT_TIMEOUT_S
        # One producer connection per request thread (anyio runs 40 sync routes at once;
        # Celery's default of 10 left the others waiting for a connection to publish).
        conf["broker_pool_limit"] = SENDER_CONNECTIONS
    conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    return conf


def _check_writable(folder: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ready-"):
            pass
    except OSError as exc:
        raise BrokerUnavailable(f"embedded broker folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.R_OK | os.W_OK):
        raise BrokerUnavailable(f"embedded broker folder {folder} is not readable and writable")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
