"""Run one child to its end and say how it ended.

The parent's loop reads progress, enforces the wall clock, and asks a `Watch` every few
hundred milliseconds whether to stop (cancel requested, lease lost). Whatever happens, the
child's process group is dead when `run_child` returns.
"""

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shears_config.logging import active_options, current_context
from worker import protocol, warm
from worker.protocol import ChildError
from worker.sandbox import Child, Limits, log_tail, signal_name, start_child

_PROGRESS_WAIT_S = 0.2
_SIGXCPU = 24


@dataclass(frozen=True)
class Stopped:
    """The parent stopped the child: `cancelled`, or `lease_lost` (another delivery owns it)."""

    reason: str


# A result document, an error, or a stop.
Ending = dict[str, Any] | ChildError | Stopped


class Watch(Protocol):
    def on_progress(self, event: dict[str, Any]) -> bool:
        """Record progress; False means the job is no longer ours."""
        ...

    def check(self) -> str | None:
        """None to go on, or the reason to stop."""
        ...


def run_child(
    workdir: Path,
    request: dict[str, Any],
    limits: Limits,
    watch: Watch | None = None,
    check_every_s: float = 0.5,
) -> Ending:
    # The child logs like its parent, with the ids of the job it runs (shears_config/logging.py).
    log_options = {**active_options(), "context": current_context()}
    protocol.write_json(workdir / protocol.REQUEST_FILE, {**request, "log": log_options})
    child = warm.take(workdir, limits) or start_child(workdir, limits)
    try:
        stopped = _watch(child, limits, watch, check_every_s)
    finally:
        # Also on SystemExit: Celery's pool turns SIGTERM into SystemExit (billiard's
        # reset_signals), e.g. on a cold shutdown or a hard time limit.
        child.kill()
    if stopped is not None:
        return stopped
    return _ending(child.popen.returncode, workdir, limits)


def _watch(
    child: Child, limits: Limits, watch: Watch | None, check_every_s: float
) -> Stopped | ChildError | None:
    deadline = time.monotonic() + limits.wall_s
    next_check = time.monotonic()
    while child.poll() is None:
        if not _forward(child.read_progress(_PROGRESS_WAIT_S), watch):
            return Stopped("lease_lost")
        now = time.monotonic()
        if now >= deadline:
            return ChildError(
                protocol.TIMEOUT, f"the job exceeded its time limit of {limits.wall_s:g} s"
            )
        if watch is not None and now >= next_check:
            reason = watch.check()
            if reason is not None:
                return Stopped(reason)
            next_check = now + check_every_s
    _forward(child.read_progress(0.0), watch)
    return None


def _forward(events: list[dict[str, Any]], watch: Watch | None) -> bool:
    return watch is None or all(watch.on_progress(event) for event in events)


def _ending(returncode: int, workdir: Path, limits: Limits) -> Ending:
    if returncode == 0:
        result = protocol.read_json(workdir / protocol.RESULT_FILE)
        if result is not None:
            return result
        return ChildError(protocol.INTERNAL_ERROR, "the engine's process ended without a result")
    if returncode < 0:
        return _killed_by_signal(-returncode, limits)
    error = protocol.read_error(workdir)
    if error is not None:
        return error
    tail = log_tail(workdir)
    return ChildError(
        protocol.INTERNAL_ERROR, f"the engine's process exited with status {returncode}: {tail}"
    )


def _killed_by_signal(number: int, limits: Limits) -> ChildError:
    if number == _SIGXCPU:
        why = f"it used more than its CPU time limit of {limits.cpu_s} s"
    else:
        why = (
            "most likely for exceeding the memory available to it "
            f"(limit {limits.memory_bytes / 1024**3:.1f} GiB)"
        )
    return ChildError(
        protocol.RESOURCE_EXHAUSTED,
        f"the job's process was killed by signal {number} ({signal_name(number)}), {why}",
        rerun=number == signal.SIGKILL,
    )
