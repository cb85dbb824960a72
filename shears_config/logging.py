"""Structured logs: one JSON object per line on stderr, carrying the ids of the work at hand.

The API, the worker and the engine's child all log through `configure_logging`. The ids
(`request_id`, `job_id`, `attempt`, `tenant`) live in one context variable, so every line
logged while a request or a job is handled carries them: threads started by
`run_in_threadpool` and asyncio tasks copy the context they start in. `SHEARS_LOG_FORMAT`
(`json` or `text`) and `SHEARS_LOG_LEVEL` choose the output (shears_config/settings.py).

No FastAPI or Celery here: the engine's child imports this module too.
"""

import contextlib
import contextvars
import hashlib
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TextIO

LogFormat = Literal["json", "text"]
LogValue = str | int
CONTEXT_FIELDS = ("request_id", "job_id", "attempt", "tenant")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_context: contextvars.ContextVar[Mapping[str, LogValue]] = contextvars.ContextVar(
    "shears_log_context", default=MappingProxyType({})
)
# What `configure_logging` chose, handed on to the engine's child (worker/supervisor.py).
_active: dict[str, str] = {"format": "json", "level": "INFO"}

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
# uvicorn repeats each message with terminal colours as an extra.
_DROPPED_EXTRAS = frozenset({"color_message"})


def current_context() -> dict[str, LogValue]:
    return dict(_context.get())


@contextlib.contextmanager
def log_context(**fields: LogValue | None) -> Iterator[None]:
    """Add ids to every line logged inside the block (None leaves a field out)."""
    token = bind_context(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    value = _context.get().get("request_id")
    return value if isinstance(value, str) else None


def bind_context(**fields: LogValue | None) -> contextvars.Token[Mapping[str, LogValue]]:
    """Add ids until `reset_context(token)`; `log_context` is the usual way."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context field(s): {sorted(unknown)}")
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def reset_context(token: contextvars.Token[Mapping[str, LogValue]]) -> None:
    _context.reset(token)


def tenant_ref(tenant: str) -> str:
    """A tenant as logs show it: a short digest, so a line names no customer, yet all lines
    of one tenant can be found together."""
    return hashlib.sha256(tenant.encode()).hexdigest()[:12]


class JsonFormatter(logging.Formatter):
    """`ts`, `level`, `logger`, `message`, the context ids, any `extra=` fields, and an
    exception as `exc_info` text: one line, whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in _DROPPED_EXTRAS and key[:1] != "_":
                document[key] = value
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str)


class TextFormatter(logging.Formatter):
    """For a terminal: the usual line, with the context ids at its end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={v}" for k, v in _context.get().items())
        if not ids:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{ids}]{newline}{rest}"


def configure_logging(
    fmt: str = "json", level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """One handler on the root logger, to `stream` (stderr); every other logger propagates.

    uvicorn's and Celery's loggers keep no handlers of their own, so their lines take the
    same format; Python warnings become log records too.
    """
    fmt, level = _checked(fmt, level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.captureWarnings(True)
    _active.update(format=fmt, level=level)
    return handler


def active_options() -> dict[str, str]:
    """The format and level in force, for a child process to configure itself alike."""
    return dict(_active)


def _checked(fmt: str, level: str) -> tuple[str, str]:
    if fmt not in ("json", "text"):
        raise ValueError(f"log format must be json or text, not {fmt!r}")
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    return fmt, level
