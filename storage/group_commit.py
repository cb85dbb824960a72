"""Group commit: concurrent inserts share one SQLite commit, and so one fsync.

A SQLite commit in WAL mode with `synchronous=FULL` waits for an fsync of the log (3.4 ms
on the disk these benchmarks ran on), and only one commit runs at a time: one commit per
job capped createJob near 250 jobs/s whatever the CPUs did. Here a writer thread per
process takes every insert waiting, runs them in one transaction and commits once; each
caller returns when the commit that holds its rows is durable, as before. The batch grows
with the load by itself: while one commit waits for the disk, the next batch gathers.

When the shared transaction fails (an idempotency key raced, say), each piece of work runs
again in its own transaction, so each caller sees exactly the error it would have alone.
"""

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from storage.database import Database

T = TypeVar("T")
MAX_BATCH = 256


@dataclass
class _Work:
    run: Callable[[Connection], Any]
    done: Future[Any] = field(default_factory=Future)


class GroupCommit:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._started_in = 0
        self._start_lock = threading.Lock()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` inside a write transaction shared with other callers; return its
        result once that transaction has committed, or raise what `work` raised."""
        if self.db.engine.url.get_backend_name() != "sqlite":
            # PostgreSQL commits concurrent transactions side by side and flushes its log
            # for several at once by itself.
            with self.db.begin() as conn:
                return work(conn)
        self._ensure_writer()
        item = _Work(work)
        self._queue.put(item)
        result: T = item.done.result()
        return result

    def _ensure_writer(self) -> None:
        # A thread does not survive a fork: a forked process starts its own writer.
        if self._started_in == os.getpid():
            return
        with self._start_lock:
            if self._started_in != os.getpid():
                threading.Thread(target=self._write_forever, name="shears-group-commit",
                                 daemon=True).start()  # fmt: skip
                self._started_in = os.getpid()

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Work]) -> None:
        try:
            with self.db.begin() as conn:
                results = [item.run(conn) for item in batch]
        except Exception:  # each caller gets its own answer below
            for item in batch:
                self._commit_alone(item)
            return
        for item, result in zip(batch, results, strict=True):
            item.done.set_result(result)

    def _commit_alone(self, item: _Work) -> None:
        try:
            with self.db.begin() as conn:
                result = item.run(conn)
        except Exception as exc:  # handed to the caller, raised there
            item.done.set_exception(exc)
            return
        item.done.set_result(result)
