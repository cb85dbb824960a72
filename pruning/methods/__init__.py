"""Pruning methods: one file per method, its class registered by the spec's method name.

A method is its entry in ``shears_methods`` (name, family, needs, options) and one file: here
a ``Scorer`` (``@SCORERS.register``) or a ``CalibratedMethod`` (``@CALIBRATED.register``), in
``pruning/training/learned/`` a ``LearnedMethod`` (``@LEARNED.register``). Its constructor
takes the options its entry declares, as the contract validated them (``spec.method.options``:
every option, given or its default). Every module of both packages is imported below
(``pruning.method_registry.load_methods``), so no import line names a method, and the
classes are checked against ``shears_methods`` family by family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pruning.method_registry import load_methods
from pruning.methods.base import SCORERS, Scorer
from pruning.methods.calibrated import CALIBRATED, CalibratedMethod
from pruning.methods.magnitude import MagnitudeScorer
from pruning.methods.random import RandomScorer
from pruning.training.learned.base import LEARNED, LearnedMethod

load_methods()
for _registry in (SCORERS, CALIBRATED, LEARNED):
    _registry.check()

# Every method the spec may name; the learned ones (pruning.training.learned) train their
# masks and need ``retrain``.
METHODS: dict[str, type[Scorer] | type[CalibratedMethod] | type[LearnedMethod]] = {
    **SCORERS,
    **CALIBRATED,
    **LEARNED,
}


def make_scorer(name: str, options: Mapping[str, Any]) -> Scorer:
    return SCORERS[name](**options)


__all__ = [
    "CALIBRATED",
    "LEARNED",
    "METHODS",
    "SCORERS",
    "CalibratedMethod",
    "LearnedMethod",
    "MagnitudeScorer",
    "RandomScorer",
    "Scorer",
    "make_scorer",
]
