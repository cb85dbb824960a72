"""Start the engine's child process with limits, and watch it from the parent.

The child runs in a new session (its own process group, so a kill reaches everything it
started), with a scrubbed environment (no database URLs, broker URLs or API keys), address
space and CPU limits, no core dumps, and a cwd in its private work dir. The parent enforces
the wall-clock limit and kills the group.
"""

import contextlib
import json
import math
import os
import resource
import select
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker import protocol

# Kept from the worker's environment; everything else (SHEARS_DATABASE_URL with its password,
# SHEARS_BROKER_URL, API keys, cloud credentials) stays out of the child.
_ENV_KEEP = (
    "PATH",
    "HOME",
    "PYTHONPATH",
    "LANG",
    "LC_ALL",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",  # which GPUs the worker may use (the `device` setting)
)
_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])
_MAX_LINE = 1 << 16


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    wall_s: float

    @property
    def cpu_s(self) -> int:
        # A backstop for an orphan; the wall clock is the real limit. CPU time adds up over
        # threads, so allow every core for the whole wall time.
        return math.ceil(self.wall_s * (os.cpu_count() or 1)) + 30


def child_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    # The child runs from its work dir, so the project must be importable from PYTHONPATH
    # when it is not installed (a source checkout).
    paths = [_PROJECT_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["TMPDIR"] = str(workdir / protocol.TEMP_DIR)
    # glibc reserves 64 MiB of address space per thread arena: under RLIMIT_AS, many
    # ONNX Runtime / OpenMP threads would exhaust the limit without using the memory.
    env["MALLOC_ARENA_MAX"] = "2"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _apply_limits(limits: Limits) -> None:
    """Runs in the child between fork and exec."""
    _apply_limits_values(limits.memory_bytes, limits.cpu_s)


def _apply_limits_values(memory_bytes: int, cpu_s: int) -> None:
    _lower(resource.RLIMIT_AS, memory_bytes, memory_bytes)
    _lower(resource.RLIMIT_CPU, cpu_s, cpu_s + 5)
    _lower(resource.RLIMIT_CORE, 0, 0)


def _lower(which: int, soft: int, hard: int) -> None:
    """Never above a hard limit the worker already runs under (a container's, say):
    raising it would fail and the job with it."""
    current = resource.getrlimit(which)[1]
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


@dataclass
class Child:
    """A running child and the read end of its progress pipe."""

    popen: subprocess.Popen[bytes]
    progress_fd: int
    _buffer: bytes = b""
    _pending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def read_progress(self, timeout: float) -> list[dict[str, Any]]:
        """Progress lines that arrived within `timeout` seconds (also the loop's sleep)."""
        if self.progress_fd >= 0:
            ready, _, _ = select.select([self.progress_fd], [], [], timeout)
            if ready:
                self._read_available()
        else:  # the pipe is closed: the child is on its way out
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        lines, self._pending = self._pending, []
        return lines

    def _read_available(self) -> None:
        chunk = os.read(self.progress_fd, _MAX_LINE)
        if not chunk:  # the child closed its end: it is exiting
            self.close()
            return
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        self._buffer = self._buffer[-_MAX_LINE:]
        for line in complete:
            parsed = _parse_progress(line)
            if parsed is not None:
                self._pending.append(parsed)

    def kill(self) -> None:
        """SIGKILL the child's whole process group and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        if self.popen.stdin is not None:  # a warm child that never got its job
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        self.close()

    def close(self) -> None:
        if self.progress_fd >= 0:
            os.close(self.progress_fd)
            self.progress_fd = -1


def _parse_progress(line: bytes) -> dict[str, Any] | None:
    """The child is untrusted: keep only well-formed progress lines."""
    try:
        parsed = json.loads(line)
        stage, fraction = str(parsed["stage"])[:64], float(parsed["fraction"])
    except (ValueError, KeyError, TypeError):
        return None
    data = parsed.get("data")
    return {"stage": stage, "fraction": fraction, "data": data if isinstance(data, dict) else None}


def start_child(workdir: Path, limits: Limits) -> Child:
    """`python -m worker.child` in `workdir`; its output goes to the work dir's log."""
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-s", "-B", "-m", "worker.child"]
    argv += [str(workdir), str(write_fd), str(os.getpid())]
    try:
        with (workdir / protocol.LOG_FILE).open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=workdir,
                env=child_env(workdir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                start_new_session=True,
                preexec_fn=lambda: _apply_limits(limits),
            )
    finally:
        os.close(write_fd)
    return Child(popen=popen, progress_fd=read_fd)


def start_warm_child(cwd: Path) -> Child:
    """`python -m worker.child --warm`: the same sandboxed child, started before its job.

    It imports the engine (torch, ONNX Runtime: seconds of a job's time) and then waits on
    its stdin for one job (`hand_job`). It opens nothing untrusted before that, and takes its
    job's limits on itself before it does; the new session, the scrubbed environment, the
    parent-death signal and the core limit are set here, as for `start_child`. `cwd` is
    where it waits (no job's files); `TMPDIR` points at an empty folder there until then.
    """
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-s", "-B", "-m", "worker.child", protocol.WARM_FLAG]
    argv += [str(write_fd), str(os.getpid())]
    try:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env(cwd),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,),
            start_new_session=True,
            preexec_fn=lambda: _lower(resource.RLIMIT_CORE, 0, 0),
        )
    finally:
        os.close(write_fd)
    return Child(popen=popen, progress_fd=read_fd)


def hand_job(child: Child, workdir: Path, limits: Limits) -> bool:
    """Give a waiting warm child its one job; False if it is gone (then start a cold one)."""
    if child.poll() is not None or child.popen.stdin is None:
        return False
    order = {"workdir": str(workdir), "memory_bytes": limits.memory_bytes, "cpu_s": limits.cpu_s}
    try:
        child.popen.stdin.write(json.dumps(order).encode() + b"\n")
        child.popen.stdin.close()
    except OSError:  # it died while waiting (an operator, the OOM killer)
        return False
    return True


def apply_limits_to_self(memory_bytes: int, cpu_s: int) -> None:
    """A warm child's own limits, taken before it opens its job's files. Lowering a limit
    needs no privilege; CPU time already spent importing counts, as it does for a cold child."""
    _apply_limits_values(memory_bytes, cpu_s)


def log_tail(workdir: Path, chars: int = 1500) -> str:
    try:
        return (workdir / protocol.LOG_FILE).read_text(errors="replace")[-chars:].strip()
    except FileNotFoundError:
        return ""


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
