"""Pruning methods: one ``Scorer`` per file, registered here by the spec's method name.

Adding a method: its entry in ``shears_methods`` (name, family, needs), a file with a
``Scorer`` or ``CalibratedMethod`` subclass (its ``name``; its constructor takes the options
of its member of the contract's ``method`` union, ``api_schemas.spec``, which validates them)
and one entry below. The registries are checked at import against ``shears_methods``, family
by family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pruning.methods.base import Scorer
from pruning.methods.calibrated import CalibratedMethod
from pruning.methods.magnitude import MagnitudeScorer
from pruning.methods.obd import ObdMethod
from pruning.methods.random import RandomScorer
from pruning.methods.sparsegpt import SparseGPTMethod
from pruning.methods.taylor import TaylorMethod
from pruning.methods.wanda import WandaMethod
from pruning.training.learned import LEARNED, LearnedMethod
from shears_methods import check_names

SCORERS: dict[str, type[Scorer]] = {
    MagnitudeScorer.name: MagnitudeScorer,
    RandomScorer.name: RandomScorer,
}


# Methods that need calibration data (see methods/calibrated.py): they prune whole layers.
CALIBRATED: dict[str, type[CalibratedMethod]] = {
    ObdMethod.name: ObdMethod,
    SparseGPTMethod.name: SparseGPTMethod,
    TaylorMethod.name: TaylorMethod,
    WandaMethod.name: WandaMethod,
}
# Every method the spec may name; the learned ones (pruning.training.learned) train their
# masks and need ``retrain``.
METHODS: dict[str, type[Scorer] | type[CalibratedMethod] | type[LearnedMethod]] = {
    **SCORERS,
    **CALIBRATED,
    **LEARNED,
}
check_names("pruning.methods.SCORERS", SCORERS, family="data_free")
check_names("pruning.methods.CALIBRATED", CALIBRATED, family="calibrated")
check_names("pruning.training.learned.LEARNED", LEARNED, family="learned")


def make_scorer(name: str, options: Mapping[str, Any]) -> Scorer:
    return SCORERS[name](**options)


__all__ = [
    "CALIBRATED",
    "METHODS",
    "SCORERS",
    "CalibratedMethod",
    "MagnitudeScorer",
    "RandomScorer",
    "Scorer",
    "make_scorer",
]
