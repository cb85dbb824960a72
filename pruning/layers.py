"""Which prunable tensors a spec selects, and at what fraction: fnmatch globs on names.

A glob matches a tensor by its own name or by its node's (``onnx::MatMul_782`` or
``/encoder/layer.0/attention/self/query/MatMul``): exporters name initializers after
nothing a user wrote, while node names follow the model's modules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Protocol

from pruning.errors import InvalidSpec, LayerPatternUnmatched, Unsupported, UnsupportedModel
from pruning.spec import LayerSelection
from pruning.tensors import SkippedTensor, WeightTensor


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def node(self) -> str: ...


@dataclass(frozen=True)
class LayerPlan:
    selected: list[WeightTensor]
    overrides: dict[str, float]  # tensor name -> its own fraction (first matching glob)
    excluded: list[str]
    skipped: list[SkippedTensor] = field(default_factory=list)  # selected, left as they are

    def skipping(self, reasons: Mapping[str, str]) -> LayerPlan:
        """This plan with the tensors of ``reasons`` moved from selected to skipped."""
        if not reasons:
            return self
        kept = [t for t in self.selected if t.name not in reasons]
        more = [
            SkippedTensor(t.name, t.node, reasons[t.name], t.op_type)
            for t in self.selected
            if t.name in reasons
        ]
        overrides = {n: f for n, f in self.overrides.items() if n not in reasons}
        plan = replace(self, selected=kept, overrides=overrides, skipped=self.skipped + more)
        plan.require_some()
        return plan

    def require_some(self) -> None:
        """Fail when every selected tensor had to be skipped: there is nothing to prune."""
        if self.selected:
            return
        reasons = "; ".join(f"{s.name!r} ({s.node}): {s.reason}" for s in self.skipped[:5])
        raise Unsupported(
            f"no selected tensor can be pruned: {reasons}; select other layers with layers.include",
            field="layers",
        )


def plan_layers(
    tensors: Sequence[WeightTensor],
    layers: LayerSelection,
    unused: Sequence[SkippedTensor] = (),
) -> LayerPlan:
    """``unused``: weights nothing reads (``ModelAdapter.skipped()``); selected ones are
    reported as skipped, and the globs may name them, as they name any other weight."""
    names = [t.name for t in tensors]
    if not names and not unused:
        raise UnsupportedModel(
            "the model has no prunable weights (weights of Conv, Gemm/Linear or MatMul with a "
            "constant operand); nothing to prune"
        )
    every: list[_Named] = [*tensors, *unused]
    _require_matches(layers.include, every, "layers.include")
    _require_matches(layers.exclude, every, "layers.exclude")
    _require_matches([p for p, _ in layers.overrides], every, "layers.overrides")

    def chosen(t: _Named) -> bool:
        return _any_match(t, layers.include) and not _any_match(t, layers.exclude)

    selected = [t for t in tensors if chosen(t)]
    skipped = [s for s in unused if chosen(s)]
    if not selected and not skipped:
        raise InvalidSpec(
            "layers.include and layers.exclude leave no tensor to prune", field="layers"
        )
    overrides = {}
    for t in selected:
        fraction = next((f for p, f in layers.overrides if _matches(t, p)), None)
        if fraction is not None:
            overrides[t.name] = fraction
    picked = {t.name for t in selected} | {s.name for s in skipped}
    excluded = [t.name for t in every if t.name not in picked]
    plan = LayerPlan(selected, overrides, excluded, skipped)
    plan.require_some()
    return plan


def _require_matches(patterns: Sequence[str], tensors: Sequence[_Named], field: str) -> None:
    for pattern in patterns:
        if not any(_matches(t, pattern) for t in tensors):
            raise LayerPatternUnmatched(pattern, field, _listing(tensors))


def _listing(tensors: Sequence[_Named]) -> list[str]:
    """What a user may write: each tensor name, with its node name where it differs."""
    return [t.name if t.node in ("", t.name) else f"{t.name} ({t.node})" for t in tensors]


def _matches(tensor: _Named, pattern: str) -> bool:
    return fnmatchcase(tensor.name, pattern) or bool(
        tensor.node and fnmatchcase(tensor.node, pattern)
    )


def _any_match(tensor: _Named, patterns: Sequence[str]) -> bool:
    return any(_matches(tensor, p) for p in patterns)
