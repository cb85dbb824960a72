"""The segment walk shared by ONNX and TorchScript calibration: each layer costs one segment's
forward pass, not one model forward.

A graph's nodes, in topological order, are cut before the first node that reads each group
of layers; layers reading the same tensor (q, k and v) form one group and one cut. The
calibration batch runs through segment 1, the caller prunes the layers of group 1, segment 2
runs with those pruned weights from the state at the cut, and so on: every node runs once,
with the weights current when its segment runs, which is the sequential scheme of SparseGPT
(Frantar & Alistarh 2023, sec. 3) at the cost of one model forward in all. The state at a cut
is every value produced before it and read after it (the residual stream, attention masks,
graph inputs read later), not only the layer input; formats say how to run a segment.

A weight read by several nodes (a layer applied twice, tied projections) is pruned once, at
the cut of its last use, from the inputs of all its uses (the earlier ones kept aside): the
whole-model scheme would see exactly those inputs. Its earlier uses ran dense; once it is
pruned, the span from its first use to that cut runs again from the state kept there, so the
layers after it see the pruned weight at every use, as they would in the whole model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

State = dict[Hashable, Any]  # value key -> value, for one chunk of the calibration batch
Group = tuple[list[str], list[torch.Tensor]]  # layer names, their shared input per chunk


@dataclass(frozen=True)
class Cut:
    at: int  # index of the first node that reads the group's last input
    sources: tuple[Hashable, ...]  # the value each use reads (one, unless a weight is shared)
    names: list[str]
    first: int  # the first read of its first input: before ``at`` for a shared weight


@dataclass
class _Kept:
    """What a shared weight's group needs from before its cut: the inputs of its earlier
    uses, per chunk, and the states at its first use, by group index."""

    inputs: dict[tuple[int, Hashable], list[Any]] = field(default_factory=dict)
    states: dict[int, list[State]] = field(default_factory=dict)


class SegmentWalk(ABC):
    """Cuts, and the walk through them; subclasses run a segment of their format."""

    def __init__(
        self,
        first_read: Mapping[Hashable, int],
        uses: Mapping[str, Sequence[Hashable]],
        names: Sequence[str],
    ) -> None:
        self.first_read = first_read  # value key -> index of the first node reading it
        self.cuts = _cuts(first_read, uses, names)
        self.stops = sorted({first_read[s] for cut in self.cuts for s in cut.sources})

    @abstractmethod
    def advance(self, states: list[State], start: int, stop: int) -> list[State]:
        """Run nodes ``[start, stop)`` on each chunk; keep what is read from ``stop`` on."""

    @abstractmethod
    def stacked(self, name: str, uses: Sequence[Any]) -> torch.Tensor:
        """The input of layer ``name`` from the values its uses read, for one chunk."""

    def snapshot(self, states: list[State]) -> list[State]:
        """A copy of ``states`` that later segments cannot change."""
        return [dict(state) for state in states]

    def walk(self, states: list[State]) -> Iterator[Group]:
        """Each group's layers and input, in graph order; prune a group before the next."""
        kept = _Kept()
        states = self._walk(states, -1, 0, kept, 0)
        position = 0
        for index, cut in enumerate(self.cuts):
            states = self._walk(states, position, cut.at, kept, index)
            position = cut.at
            yield cut.names, self._captured(cut, index, states, kept)
            if cut.first < cut.at:  # a shared weight, now pruned: its span runs again
                states = self._walk(kept.states.pop(index), cut.first, cut.at, kept, index + 1)

    def _captured(
        self, cut: Cut, index: int, states: list[State], kept: _Kept
    ) -> list[torch.Tensor]:
        """Per chunk, the group's input: the inputs of all uses of a shared weight, stacked."""
        uses = [
            kept.inputs.pop((index, s)) if (index, s) in kept.inputs else [x[s] for x in states]
            for s in cut.sources
        ]
        return [self.stacked(cut.names[0], chunk) for chunk in zip(*uses, strict=True)]

    def _walk(
        self, states: list[State], start: int, stop: int, kept: _Kept, pending: int
    ) -> list[State]:
        """Advance from node ``start`` to ``stop`` through the stops between them, keeping,
        for the groups from ``pending`` on, the inputs of earlier uses and the states their
        span will run again from."""
        position = max(start, 0)
        for stop_at in (p for p in self.stops if start < p <= stop):
            states = self.advance(states, position, stop_at)
            position = stop_at
            for index, cut in enumerate(self.cuts[pending:], pending):
                if cut.first == cut.at:
                    continue
                if cut.first == stop_at:
                    kept.states[index] = self.snapshot(states)
                for source in cut.sources[:-1]:
                    if self.first_read[source] == stop_at:
                        chunks = self.snapshot([{source: state[source]} for state in states])
                        kept.inputs[(index, source)] = [chunk[source] for chunk in chunks]
        return self.advance(states, position, stop) if position < stop else states


def _cuts(
    first_read: Mapping[Hashable, int], uses: Mapping[str, Sequence[Hashable]], names: Sequence[str]
) -> list[Cut]:
    by_sources: dict[tuple[Hashable, ...], list[str]] = {}
    for name in sorted(names, key=lambda n: min(first_read[s] for s in uses[n])):
        sources = tuple(sorted(uses[name], key=lambda s: first_read[s]))
        by_sources.setdefault(sources, []).append(name)
    cuts = [
        Cut(first_read[sources[-1]], sources, group, first_read[sources[0]])
        for sources, group in by_sources.items()
    ]
    return sorted(cuts, key=lambda c: c.at)
