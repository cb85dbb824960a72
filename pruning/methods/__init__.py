"""Pruning methods: one ``Scorer`` per file, registered here by the spec's method name.

Adding a method: a file with a ``Scorer`` subclass (its ``name`` and ``OPTIONS``) and one
entry below; the spec parser reads names and options from this registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pruning.methods.base import Scorer
from pruning.methods.magnitude import MagnitudeScorer
from pruning.methods.random import RandomScorer

SCORERS: dict[str, type[Scorer]] = {
    MagnitudeScorer.name: MagnitudeScorer,
    RandomScorer.name: RandomScorer,
}


def make_scorer(name: str, options: Mapping[str, Any]) -> Scorer:
    return SCORERS[name](**options)


__all__ = ["SCORERS", "MagnitudeScorer", "RandomScorer", "Scorer", "make_scorer"]
