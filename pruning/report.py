"""The report's sparsity section, read back from the saved artifact (not from memory)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pruning.models.base import Array
from pruning.spec import PruneSpec
from pruning.tensors import SkippedTensor


@dataclass(frozen=True)
class LayerStats:
    name: str
    shape: list[int]
    parameters: int
    nonzeros: int

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    def to_json(self, target: float | None, node: str = "", op_type: str = "") -> dict[str, Any]:
        return {
            "name": self.name,
            "node": node,
            "op_type": op_type,
            "shape": self.shape,
            "parameters": self.parameters,
            "nonzeros": self.nonzeros,
            "sparsity": 1.0 - self.nonzeros / self.parameters if self.parameters else 0.0,
            "target": target,
        }


@dataclass(frozen=True)
class PrunedLayers:
    """What was pruned, by name: enough to report without holding the weights."""

    names: list[str]
    overrides: Mapping[str, float]
    excluded: list[str]
    skipped: list[SkippedTensor] = field(default_factory=list)  # selected, left as they are
    uses: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # name -> node, op type


@dataclass(frozen=True)
class ArtifactCensus:
    layers: list[LayerStats]  # the pruned tensors, in plan order
    total_parameters: int
    total_zeros: int
    skipped_parameters: int = 0
    # The pruned tensors as saved, in plan order: the storage figures, the histogram and the
    # sparse outputs read them from here, so the saved model is read once for all of them.
    weights: dict[str, Array] = field(default_factory=dict)
    # The storage report's per-tensor lines, when counted while writing (the streaming
    # engine keeps no weights to count them from afterwards).
    storage_layers: list[dict[str, Any]] | None = None


def census(parameters: Iterable[tuple[str, Array]], pruned: PrunedLayers) -> ArtifactCensus:
    """One pass over the saved model's parameters."""
    wanted = set(pruned.names)
    skipped = {s.name for s in pruned.skipped}
    found: dict[str, LayerStats] = {}
    weights: dict[str, Array] = {}
    total = zeros = skipped_size = 0
    for name, values in parameters:
        nonzeros = int(np.count_nonzero(values))
        total += int(values.size)
        zeros += int(values.size) - nonzeros
        skipped_size += int(values.size) if name in skipped else 0
        if name in wanted:
            shape = [int(d) for d in values.shape]
            found[name] = LayerStats(name, shape, int(values.size), nonzeros)
            weights[name] = values
    missing = wanted - set(found)
    if missing:  # the save step lost a tensor: a bug, not a user error
        raise RuntimeError(f"pruned tensors missing from the saved model: {sorted(missing)}")
    ordered = {n: weights[n] for n in pruned.names}
    layers = [found[n] for n in pruned.names]
    return ArtifactCensus(layers, total, zeros, skipped_size, ordered)


def sparsity_section(
    found: ArtifactCensus, pruned: PrunedLayers, spec: PruneSpec
) -> dict[str, Any]:
    selected = sum(s.parameters for s in found.layers)
    nonzeros = sum(s.nonzeros for s in found.layers)
    default = spec.sparsity if spec.scope == "layerwise" else None
    total = found.total_parameters
    return {
        "target": spec.sparsity,
        "achieved": 1.0 - nonzeros / selected if selected else 0.0,
        # ``achieved`` counts the pruned tensors only: skipped ones (nothing reads them, or
        # the method cannot score them) and excluded ones are left out of it, and counted.
        "sparsity_over": "pruned tensors",
        "pruned_tensors": len(found.layers),
        "skipped_tensors": len(pruned.skipped),
        "excluded_tensors": len(pruned.excluded),
        "scope": spec.scope,
        "selected_parameters": selected,
        "skipped_parameters": found.skipped_parameters,
        "layers": [
            s.to_json(pruned.overrides.get(s.name, default), *pruned.uses.get(s.name, ("", "")))
            for s in found.layers
        ],
        "excluded": pruned.excluded,
        "total_parameters": total,
        "model_sparsity": found.total_zeros / total if total else 0.0,
        "warnings": _collapsed_layers(found.layers, spec.scope),
    }


def _collapsed_layers(layers: list[LayerStats], scope: str) -> list[str]:
    """A layer with no weight left passes on only its bias: the model's output no longer
    depends on what came before it. Global thresholds do this to layers whose weights are
    small by initialisation (often the classifier), so say it loudly."""
    hint = "exclude it or give it an override" if scope == "global" else "lower the target"
    return [
        f"{layer.name}: all {layer.parameters} weights are zero, so the layer's output no "
        f"longer depends on its input; {hint}"
        for layer in layers
        if layer.parameters and layer.nonzeros == 0
    ]
