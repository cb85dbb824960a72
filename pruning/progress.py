"""Progress as the worker sees it: a stage name and one overall fraction in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[str, float, dict[str, Any] | None], None]

# Share of a typical job's wall time per stage (latency dominates: both models run).
STAGES: dict[str, tuple[float, float]] = {
    "load": (0.00, 0.10),
    "prune": (0.10, 0.35),
    "save": (0.35, 0.45),
    "latency": (0.45, 0.80),
    "fidelity": (0.80, 0.90),
    "report": (0.90, 1.00),
}


class Progress:
    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback

    def __call__(self, stage: str, within: float = 0.0, info: dict[str, Any] | None = None) -> None:
        if self.callback is None:
            return
        start, end = STAGES[stage]
        self.callback(stage, round(start + (end - start) * min(max(within, 0.0), 1.0), 4), info)
