"""The headline of a channel job: what a user of structured pruning asks first. A model that
lost whole heads and neurons has no zeros, so the unstructured ``sparsity.achieved`` reads
0.0; this puts parameters, FLOPs, file size, units removed per layer and the measured speedup
in one place, each taken from the report block that measured it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def structured_headline(
    structure: Mapping[str, Any] | None,
    latency: Mapping[str, Any] | None,
    storage: Mapping[str, Any],
    quality: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    if not structure or structure.get("kind") != "channel":
        return None
    formats = storage.get("formats", {})
    units = structure.get("units") or []
    return {
        "physically_smaller": structure.get("physically_smaller"),
        "parameters": _change(structure.get("parameters")),
        "flops": _change(structure.get("flops")),
        "file_bytes": _change({"before": formats.get("dense_file"), "after": formats.get("file")}),
        "heads_removed": _removed(units, "head"),
        "neurons_removed": _removed(units, "neuron"),
        # A TorchScript model that is not a plain Sequential keeps its shapes (zeroed only).
        "channels_removed": sum(
            g["channels"] - g["kept"] for g in structure.get("groups", []) if g.get("pruned")
        )
        if structure.get("physically_smaller")
        else 0,
        "speedup": {
            str(r["batch_size"]): r.get("speedup")
            for r in (latency or {}).get("results", [])
            if "batch_size" in r
        },
        "speedup_from": "latency.results (measured, dense and pruned runs interleaved)",
        "output_cosine": ((quality or {}).get("fidelity") or {}).get("output_cosine"),
        "output_cosine_from": "quality.fidelity (its source says which inputs)",
        "target": structure.get("target"),
        "note": "sparsity.achieved counts zeros inside kept tensors; removed heads, neurons "
        "and channels are gone from the model, not zero, so they appear here instead",
    }


def _change(pair: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not pair or pair.get("before") is None or pair.get("after") is None:
        return None
    before, after = pair["before"], pair["after"]
    return {"before": before, "after": after, "ratio": round(after / before, 4) if before else None}


def _removed(units: list[Mapping[str, Any]], kind: str) -> dict[str, Any]:
    layers = [u for u in units if u.get("kind") == kind and u.get("units") is not None]
    return {
        "total": sum(u["units"] - u["kept"] for u in layers),
        "of": sum(u["units"] for u in layers),
        "per_layer": {u["layer"]: u["units"] - u["kept"] for u in layers},
    }
