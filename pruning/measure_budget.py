"""Whether the latency benchmark and the output-fidelity check may run: both load the whole
model in ONNX Runtime (or torch), the upload and the pruned copy at once, so they run only
when two copies of the model's bytes fit the budget (``SHEARS_MEASURE_MEMORY_BYTES``, passed
by the worker). Above it the report says "not measured" and why, and the job succeeds: a
memory limit is a reason to skip a measurement, never to kill the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pruning.fidelity import SYNTHETIC, not_measured
from pruning.models.onnx_archive import archive_kind
from pruning.streaming.layout import read_layout

# Two runtime copies of a 512 MiB model: a job stays near 1.5 GB of anonymous memory.
DEFAULT_MEASURE_MEMORY_BYTES = 1 << 30
SETTING = "SHEARS_MEASURE_MEMORY_BYTES"


def model_bytes(model_file: Path) -> int:
    """The model's size on disk: the file, and for ONNX the data files it names (read from
    the graph alone: parsing the whole of a 1 GB file took seconds and a GB of memory)."""
    if model_file.suffix != ".onnx" or archive_kind(model_file) is not None:
        return model_file.stat().st_size
    files = read_layout(model_file, allow_external=True).files()
    return sum(path.stat().st_size for path in files)


def over_budget(model_file: Path, budget: int | None) -> str | None:
    """Why the two runtime copies do not fit ``budget`` bytes, or None when they do."""
    limit = DEFAULT_MEASURE_MEMORY_BYTES if budget is None else budget
    size = model_bytes(model_file)
    if 2 * size <= limit:
        return None
    return (
        f"not measured: the dense and the pruned model loaded together need about "
        f"{_gib(2 * size)}, above the measurement budget of {_gib(limit)} ({SETTING}); "
        "raise it on a worker with the memory to spare"
    )


def unmeasured(reason: str, runtime: str, threads: int, latency_asked: bool) -> dict[str, Any]:
    """``_benchmark``'s result when nothing could be run: the report keeps its shape."""
    latency = None
    if latency_asked:
        latency = {
            "runtime": runtime,
            "threads": threads,
            "results": [],
            "measured": False,
            "reason": reason,
            "note": reason,
        }
    return {
        "latency": latency,
        "fidelity": not_measured(SYNTHETIC, reason),
        "calibration_fidelity": None,
    }


def _gib(size: int) -> str:
    return f"{size / 1024**3:.2f} GiB"
