"""One warm engine child per pool process, started after a job for the next one.

A cold child spends seconds importing torch and ONNX Runtime before its job starts. A warm
child (worker/sandbox.py `start_warm_child`) pays that while the pool process waits for
work, and is used once: every job still gets a process of its own, so tenants never share
engine state. If the spare died while waiting, the job starts a cold child as before.

The spare is started from the pool process's main thread (Celery's `worker_process_init`,
then after each task), since its parent-death signal is tied to the thread that started it.
Off unless `enable` is called: code that runs jobs in its own process (tests, the CLI) gets
cold children and leaves no process behind.
"""

import atexit
import logging
from pathlib import Path

from worker.sandbox import Child, Limits, hand_job, start_warm_child

log = logging.getLogger(__name__)

_cwd: Path | None = None
_spare: Child | None = None


def enable(cwd: Path) -> None:
    """Keep a spare from now on in this process; it waits in `cwd` (no job's files)."""
    global _cwd
    if _cwd is None:
        atexit.register(discard)
    _cwd = cwd
    refill()


def refill() -> None:
    """Start the spare if enabled and there is none (after a task: the job is recorded)."""
    global _spare
    if _cwd is None or (_spare is not None and _spare.poll() is None):
        return
    discard()
    try:
        _spare = start_warm_child(_cwd)
    except OSError:  # no spare: the next job starts cold
        log.exception("could not start a warm engine child")


def take(workdir: Path, limits: Limits) -> Child | None:
    """The spare, now running the job in `workdir`; None when there is none to give."""
    global _spare
    spare, _spare = _spare, None
    if spare is None:
        return None
    if hand_job(spare, workdir, limits):
        return spare
    spare.kill()
    return None


def spare_pid() -> int | None:
    return _spare.pid if _spare is not None else None


def disable() -> None:
    """No more spares in this process; the one waiting is killed."""
    global _cwd
    _cwd = None
    discard()


def discard() -> None:
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        spare.kill()
