"""Progress as the worker sees it: a stage name and one overall fraction in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[str, float, dict[str, Any] | None], None]

# Share of a job's wall time per stage, in the order they run (retraining, when asked for,
# dominates; fidelity on synthetic inputs runs before latency, which takes what its budget
# leaves). A job without
# retraining skips that band, so fractions only ever grow.
STAGES: dict[str, tuple[float, float]] = {
    "load": (0.00, 0.05),
    "prune": (0.05, 0.15),
    "retrain": (0.15, 0.60),
    "save": (0.60, 0.65),
    "fidelity": (0.65, 0.72),
    "latency": (0.72, 0.92),
    "report": (0.92, 1.00),
}


class Progress:
    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback

    def __call__(self, stage: str, within: float = 0.0, info: dict[str, Any] | None = None) -> None:
        if self.callback is None:
            return
        start, end = STAGES[stage]
        self.callback(stage, round(start + (end - start) * min(max(within, 0.0), 1.0), 4), info)
