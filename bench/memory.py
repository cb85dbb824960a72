"""Peak memory of running processes, sampled from /proc while a benchmark runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path


class PeakSampler:
    """The largest value `measure()` (bytes) returned, sampled every `interval_s`."""

    def __init__(self, measure: Callable[[], int], interval_s: float) -> None:
        self.measure, self.interval_s, self.peak = measure, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self.measure())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def status_bytes(pid: int, field: str) -> int:
    """A `/proc/PID/status` size field (`VmRSS`, `RssAnon`) in bytes; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found, frontier = [pid], [pid]
    while frontier:
        children = []
        for parent in frontier:
            try:
                text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
            except OSError:
                continue
            children += [int(c) for c in text.split()]
        found += children
        frontier = children
    return found


def tree_anon_bytes(pid: int) -> int:
    """Anonymous resident memory of a process and all its descendants, summed."""
    return sum(status_bytes(p, "RssAnon") for p in process_tree(pid))
