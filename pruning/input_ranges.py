"""Which values an integer or bool input may take, read from how the graph uses it.

Synthetic inputs must exercise the model: zeros for token ids make every token padding, so a
dense and a pruned encoder agree exactly and the report shows a fidelity of 1.0 that no
sentence would see. Each adapter reads its own graph (``ModelAdapter.input_ranges``) and
answers with one of these; ``pruning.inputs`` draws values from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["indices", "mask", "unsized", "free"]


@dataclass(frozen=True)
class InputRange:
    """``indices``: values in [0, high); ``mask``: ones (every position attended);
    ``unsized``: indices of a table whose size the graph does not say; ``free``: no use
    that constrains it was found."""

    kind: Kind
    high: int | None = None
    why: str = ""


FREE = InputRange("free")


@dataclass(frozen=True)
class IndexUse:
    """One place an input is used as indices: the table's name and its rows, if known."""

    table: str
    rows: int | None


def decide(indexed: Iterable[IndexUse], masked: bool) -> InputRange:
    """Indices win over mask evidence: token ids are compared with a padding id in some
    graphs, and drawing them all as ones would hide as much as zeros do."""
    uses = list(indexed)
    if uses:
        unsized = [u.table for u in uses if u.rows is None]
        if unsized:
            return InputRange(
                "unsized", why=f"indices of {unsized[0]!r}, whose size the graph does not give"
            )
        smallest = min(uses, key=lambda u: u.rows or 0)
        rows = smallest.rows or 0
        if rows < 1:
            return InputRange("unsized", why=f"indices of {smallest.table!r}, which is empty")
        return InputRange("indices", rows, f"indices of {smallest.table!r} ({rows} rows)")
    if masked:
        return InputRange("mask", why="used as a mask")
    return FREE
