"""Which prunable tensors a spec selects, and at what fraction: fnmatch globs on names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pruning.errors import InvalidSpec, LayerPatternUnmatched, UnsupportedModel
from pruning.spec import LayerSelection
from pruning.tensors import WeightTensor


@dataclass(frozen=True)
class LayerPlan:
    selected: list[WeightTensor]
    overrides: dict[str, float]  # tensor name -> its own fraction (first matching glob)
    excluded: list[str]


def plan_layers(tensors: Sequence[WeightTensor], layers: LayerSelection) -> LayerPlan:
    names = [t.name for t in tensors]
    if not names:
        raise UnsupportedModel(
            "the model has no prunable weights (weights of Conv, Gemm/Linear or MatMul with a "
            "constant operand); nothing to prune"
        )
    _require_matches(layers.include, names, "layers.include")
    _require_matches(layers.exclude, names, "layers.exclude")
    _require_matches([p for p, _ in layers.overrides], names, "layers.overrides")
    selected = [
        t
        for t in tensors
        if _any_match(t.name, layers.include) and not _any_match(t.name, layers.exclude)
    ]
    if not selected:
        raise InvalidSpec(
            "layers.include and layers.exclude leave no tensor to prune", field="layers"
        )
    overrides = {}
    for t in selected:
        fraction = next((f for p, f in layers.overrides if fnmatchcase(t.name, p)), None)
        if fraction is not None:
            overrides[t.name] = fraction
    chosen = {t.name for t in selected}
    return LayerPlan(selected, overrides, [n for n in names if n not in chosen])


def _require_matches(patterns: Sequence[str], names: list[str], field: str) -> None:
    for pattern in patterns:
        if not _any_match_names(pattern, names):
            raise LayerPatternUnmatched(pattern, field, names)


def _any_match(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def _any_match_names(pattern: str, names: list[str]) -> bool:
    return any(fnmatchcase(n, pattern) for n in names)
