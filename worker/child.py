"""The sandboxed child: `python -m worker.child WORKDIR PROGRESS_FD PARENT_PID`, or
`python -m worker.child --warm PROGRESS_FD PARENT_PID` (started before its job, which it
reads as one line on stdin; worker/warm.py).

It runs one engine call on the files the parent placed in WORKDIR, streams progress as JSON
lines on PROGRESS_FD, and leaves `result.json` or `error.json`. The parent has already set
its resource limits, session and environment (worker/sandbox.py). TorchScript is code, so
this is the only process that ever opens an uploaded model.
"""

import ctypes
import json
import logging
import os
import resource
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from shears_config.logging import CONTEXT_FIELDS, bind_context, configure_logging
from worker import protocol
from worker.sandbox import apply_limits_to_self

_PR_SET_PDEATHSIG = 1
log = logging.getLogger("shears.engine")

Progress = Callable[[str, float, dict[str, Any] | None], None]


def main(argv: list[str]) -> int:
    if argv and argv[0] == protocol.WARM_FLAG:
        progress_fd, parent_pid = int(argv[1]), int(argv[2])
        _die_with_parent(parent_pid)
        _preload()
        job = _wait_for_job()
        if job is None:  # the worker let it go unused
            return 0
        workdir = job
    else:
        workdir, progress_fd, parent_pid = Path(argv[0]), int(argv[1]), int(argv[2])
        _die_with_parent(parent_pid)
    return _serve(workdir, progress_fd)


def _preload() -> None:
    """What every job imports (seconds of CPU): done while no job waits. Only the project's
    and its dependencies' code runs here; a failure is left for the job's own import to
    raise again and classify (under its limits)."""
    try:
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401

        import pruning.engine  # noqa: F401
    except Exception:
        return


def _wait_for_job() -> Path | None:
    """Block until the worker names this child's job (worker/sandbox.py `hand_job`), then
    become what a cold child is from its first instruction: output to the job's log, cwd and
    TMPDIR in its work dir, its limits on address space and CPU time."""
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return None
    order = json.loads(line)
    workdir = Path(str(order["workdir"]))
    log_fd = os.open(workdir / protocol.LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.chdir(workdir)
    os.environ["TMPDIR"] = str(workdir / protocol.TEMP_DIR)
    tempfile.tempdir = None  # read TMPDIR afresh
    apply_limits_to_self(int(order["memory_bytes"]), int(order["cpu_s"]))
    return workdir


def _serve(workdir: Path, progress_fd: int) -> int:
    request = protocol.read_json(workdir / protocol.REQUEST_FILE) or {}
    _configure_logging(request.get("log"))
    with os.fdopen(progress_fd, "w", buffering=1) as stream:
        try:
            result = _run(request, workdir, _progress_writer(stream))
        except BaseException as exc:  # every way out leaves an error.json
            error = _classify(exc)
            log.error("the engine failed (%s)", error["code"], exc_info=exc)
            protocol.write_json(workdir / protocol.ERROR_FILE, error)
            return 1
    protocol.write_json(workdir / protocol.RESULT_FILE, result)
    return 0


def _configure_logging(options: Any) -> None:
    """Log as the worker does, with its job's ids: lines go to the work dir's log file, whose
    tail the worker quotes when the child dies without an error.json."""
    options = options if isinstance(options, dict) else {}
    try:
        configure_logging(str(options.get("format", "json")), str(options.get("level", "INFO")))
    except ValueError:
        configure_logging()
    context = options.get("context")
    if isinstance(context, dict):
        fields = {k: v for k, v in context.items() if k in CONTEXT_FIELDS}
        bind_context(**{k: v for k, v in fields.items() if isinstance(v, str | int)})


def _run(request: dict[str, Any], workdir: Path, progress: Progress) -> dict[str, Any]:
    kind = request.get("kind")
    model = workdir / str(request["model"])
    fmt = request.get("format")
    if kind == "inspect":
        from pruning import inspect_model

        return {"info": inspect_model(model, fmt, _budget(request))}
    if kind == "prune":
        return _prune(request, workdir, model, fmt, progress)
    raise ValueError(f"unknown request kind {kind!r}")


def _prune(
    request: dict[str, Any], workdir: Path, model: Path, fmt: str | None, progress: Progress
) -> dict[str, Any]:
    from pruning import KnownDigests, prune

    datasets = {name: workdir / rel for name, rel in dict(request.get("datasets") or {}).items()}
    digests = dict(request.get("digests") or {})
    out_dir = workdir / protocol.OUTPUT_DIR
    device = str(request.get("device") or "cpu")  # the worker's SHEARS_DEVICE
    name = request.get("model_name")
    result = prune(
        model,
        dict(request["spec"]),
        out_dir,
        fmt,
        progress,
        datasets,
        device,
        model_name=str(name) if name else None,
        measure_bytes=_budget(request),
        digests=KnownDigests(
            model=digests.get("model"), datasets=dict(digests.get("datasets") or {})
        ),
    )
    artifacts = {name: _relative(Path(path), workdir) for name, path in result.artifacts.items()}
    return {"artifacts": artifacts, "report": result.report}


def _budget(request: dict[str, Any]) -> int | None:
    """The worker's SHEARS_MEASURE_MEMORY_BYTES (None from an older worker: the default)."""
    value = request.get("measure_memory_bytes")
    return int(value) if value is not None else None


def _relative(path: Path, workdir: Path) -> str:
    resolved = (workdir / path).resolve() if not path.is_absolute() else path.resolve()
    return str(resolved.relative_to(workdir.resolve()))


def _progress_writer(stream: IO[str]) -> Progress:
    def write(stage: str, fraction: float, data: dict[str, Any] | None = None) -> None:
        line = {"stage": str(stage), "fraction": float(fraction), "data": data}
        stream.write(json.dumps(line, default=protocol._jsonable) + "\n")

    return write


def _classify(exc: BaseException) -> dict[str, str]:
    """Map an exception to API.md's error codes; the message is what a user reads."""
    if _is_engine_error(exc) and not _allocation_failed(exc):
        return {"code": str(getattr(exc, "code", protocol.INTERNAL_ERROR)), "message": str(exc)}
    if isinstance(exc, MemoryError) or _out_of_address_space(exc) or _allocation_failed(exc):
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        return {
            "code": protocol.RESOURCE_EXHAUSTED,
            "message": f"the job ran out of memory (limit {_human_bytes(limit)})",
        }
    return {"code": protocol.INTERNAL_ERROR, "message": f"{type(exc).__name__}: {exc}"}


def _is_engine_error(exc: BaseException) -> bool:
    try:
        from pruning import EngineError
    except ImportError:
        return False
    return isinstance(exc, EngineError)


def _out_of_address_space(exc: BaseException) -> bool:
    # Under RLIMIT_AS, loading a shared library (torch's) fails with ImportError or OSError
    # rather than MemoryError: "failed to map segment" / "Cannot allocate memory".
    text = str(exc)
    return isinstance(exc, ImportError | OSError) and (
        "failed to map segment" in text or "Cannot allocate memory" in text
    )


# What ONNX Runtime and torch say when an allocation fails under RLIMIT_AS; the engine may
# have wrapped it (a model that fails on its inputs is a DataMismatch), so look down the chain.
_ALLOCATION_FAILURES = (
    "Failed to allocate memory",
    "bad_alloc",
    "can't allocate memory",
    "Cannot allocate memory",
)


def _allocation_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, MemoryError) or any(m in str(seen) for m in _ALLOCATION_FAILURES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _human_bytes(n: int) -> str:
    if n == resource.RLIM_INFINITY:
        return "none"
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


def _die_with_parent(parent_pid: int) -> None:
    """If the worker dies (hard time limit, OOM killer, kill -9), so does this child.

    Linux only; elsewhere the parent's own kill on timeout and RLIMIT_CPU remain. The signal
    fires when the *thread* that started us exits, so the parent starts children from a
    long-lived thread (a pool process's main thread).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
