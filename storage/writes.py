"""One writer at a time on a SQLite store, queued instead of polled.

SQLite lets one transaction write at a time. Left to itself, a writer that finds the file
locked sleeps in SQLite's busy handler (1, 2, 5, ... up to 100 ms) and tries again, so under
load (40 request threads in each API process, workers writing progress) most of createJob's
time went to those sleeps and p99 grew to seconds. Here writers queue instead: a thread lock
inside the process and an `flock` on a file beside the database across processes, both
handed over the moment the holder commits. PostgreSQL locks rows itself: no lock there.
"""

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import Connection, Engine


class WriteLock:
    """Held for the length of one write transaction; a no-op unless the store is a file."""

    def __init__(self, engine: Engine) -> None:
        self._thread_lock = threading.Lock()
        self._path = _lock_path(engine)
        self._fd: int | None = None
        self._pid = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        with self._thread_lock:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int:
        # A forked process (uvicorn's workers, Celery's pool) needs its own open file: an
        # flock belongs to the open file, which a fork would share with the parent.
        if self._fd is None or self._pid != os.getpid():
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd


def _lock_path(engine: Engine) -> Path | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}.write-lock")


@contextlib.contextmanager
def write_transaction(engine: Engine, lock: WriteLock) -> Iterator[Connection]:
    """`engine.begin()` with this process's turn at the write lock."""
    with lock.held(), engine.begin() as conn:
        yield conn
