"""Which channels of an activation belong to which prunable group.

A ``ChannelMap`` describes the channel axis of one tensor as consecutive ``Segment``s: each
covers ``channels`` channels of one group, every channel spread over ``block`` consecutive
positions (1 for a conv feature map; H*W once a Flatten turned channels into features).
Concatenation appends segments; a residual addition unions the groups of both sides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FIXED = -1  # channels from no prunable layer (a graph input, a layer left alone): all kept


@dataclass(frozen=True)
class Segment:
    group: int
    channels: int
    block: int = 1


@dataclass(frozen=True)
class ChannelMap:
    axis: int
    rank: int
    segments: tuple[Segment, ...]

    @property
    def size(self) -> int:
        return sum(s.channels * s.block for s in self.segments)

    def groups(self) -> set[int]:
        return {s.group for s in self.segments if s.group != FIXED}

    def layout(self) -> tuple[tuple[int, int], ...]:
        return tuple((s.channels, s.block) for s in self.segments)

    def kept_positions(self, keep: Mapping[int, IntArray], find: UnionFind) -> IntArray:
        """Positions along the axis that survive, given kept channel indices per group root."""
        parts, offset = [], 0
        for s in self.segments:
            root = find.root(s.group) if s.group != FIXED else FIXED
            width = s.channels * s.block
            if root in keep:
                starts = keep[root] * s.block
                parts.append(offset + (starts[:, None] + np.arange(s.block)).reshape(-1))
            else:
                parts.append(offset + np.arange(width))
            offset += width
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


class UnionFind:
    """Groups tied together (residual additions): one root per set."""

    def __init__(self) -> None:
        self._parent: list[int] = []

    def new(self) -> int:
        self._parent.append(len(self._parent))
        return len(self._parent) - 1

    def root(self, group: int) -> int:
        while self._parent[group] != group:
            self._parent[group] = self._parent[self._parent[group]]
            group = self._parent[group]
        return group

    def union(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def roots(self, groups: Iterable[int]) -> set[int]:
        return {self.root(g) for g in groups}
