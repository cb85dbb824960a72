"""Start, wait for, and stop real subprocesses; keep their output for failure reports."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class ProcessFailed(AssertionError):
    """A process exited, or never became ready; the message carries its log tail."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    """One subprocess in its own session, with stdout and stderr in `log_path`."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 6000) -> str:
        return self.log()[-chars:]

    def wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until true; fail with the log if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.running():
                raise ProcessFailed(
                    f"{self.name} exited with {self.popen.returncode} before {what}\n"
                    f"--- {self.log_path} ---\n{self.log_tail()}"
                )
            time.sleep(0.1)
        raise ProcessFailed(
            f"{self.name} not {what} after {timeout:.0f}s\n--- {self.log_path} ---\n"
            f"{self.log_tail()}"
        )

    def wait_for_log(self, text: str, timeout: float) -> None:
        self.wait_for(lambda: text in self.log(), timeout, f"logging {text!r}")

    def send(self, sig: int) -> None:
        """Signal the whole process group: a Celery worker's pool children included."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the group, wait, then SIGKILL whatever is left, including descendants
        that started their own session (`shears serve`'s worker, engine children)."""
        family = descendants(self.pid) if self.running() else []
        self.send(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._kill_leftover_group()
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return self.popen.returncode

    def kill(self) -> None:
        self.send(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def _kill_leftover_group(self) -> None:
        # Pool children or engine children may outlive their parent by a moment.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


@dataclass
class ProcessRegistry:
    """The processes of one test: started here, all stopped by `stop_all`."""

    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path = REPO_ROOT,
    ) -> ManagedProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{len(self.processes):02d}-{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = ManagedProcess(name=name, argv=list(argv), log_path=log_path, popen=popen)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def report(self) -> list[tuple[str, str]]:
        """(title, log tail) of each process, for the failure report."""
        return [
            (f"{p.name} (pid {p.pid}, exit {p.popen.returncode}) {p.log_path}", p.log_tail())
            for p in self.processes
        ]


def python_argv(*args: str) -> list[str]:
    """Run a module with the interpreter that runs the tests (the project's venv)."""
    return [sys.executable, *args]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    cmdline: list[str]


def list_processes() -> list[ProcessInfo]:
    """Every process on this (Linux) machine, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it exited while we looked
            continue
        # The command name in parentheses may contain spaces: fields start after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        args = [part.decode(errors="replace") for part in cmdline if part]
        found.append(ProcessInfo(pid=int(entry.name), ppid=ppid, cmdline=args))
    return found


def engine_children(parent: int | None = None) -> list[ProcessInfo]:
    """Running sandboxed engine children (`python -m worker.child`), optionally of one parent."""
    return [
        p
        for p in list_processes()
        if "worker.child" in p.cmdline and (parent is None or p.ppid == parent)
    ]


def process_cwd(pid: int) -> str:
    """Where `pid` runs ('' once it is gone)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def job_children(parent: int | None = None) -> list[ProcessInfo]:
    """Engine children running a job or an inspection: a cold child names its work dir on
    its command line, a warm one (worker/warm.py) moves into it when it gets its job; an
    idle warm child is in neither."""
    return [
        p
        for p in engine_children(parent)
        if any(part in arg for arg in (*p.cmdline, process_cwd(p.pid)) for part in _WORKDIRS)
    ]


_WORKDIRS = ("/job-", "/inspect-")


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of `pid`, whatever session or group they are in."""
    children: dict[int, list[int]] = {}
    for process in list_processes():
        children.setdefault(process.ppid, []).append(process.pid)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")


@contextlib.contextmanager
def scoped_registry(log_dir: Path) -> Iterator[ProcessRegistry]:
    """Processes for a module- or session-scoped fixture: all stopped at the end, and their
    logs printed when starting them failed (a function-scoped test gets them in its report
    from the `processes` fixture instead)."""
    registry = ProcessRegistry(log_dir=log_dir)
    try:
        yield registry
    except BaseException:
        for title, log in registry.report():
            print(f"--- {title}\n{log}")
        raise
    finally:
        registry.stop_all()
