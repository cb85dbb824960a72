"""Sections about the weights: sparsity per layer, magnitudes, and storage per format."""

import math
from collections.abc import Mapping
from typing import Any

from pruning.html import values as v
from pruning.html.bars import DENSE, PRUNED, Bar, Marker, hbar_chart
from pruning.html.curves import histogram_chart
from pruning.html.layout import details, figure, missing, note, section
from pruning.html.magnitudes import MagnitudeHistogram, Tensors, magnitude_histogram
from pruning.html.svg import nice_max
from pruning.html.tables import table

MAX_BARS = 60  # a taller chart stops being read; the table below lists every layer


def sparsity_section(report: Mapping[str, Any]) -> str:
    sparsity = v.block(report, "sparsity")
    layers = v.rows(sparsity, "layers")
    skipped = v.rows(report, "skipped")
    lead = (
        f"Target {v.percent(sparsity.get('target'))}, achieved "
        f"{v.percent(sparsity.get('achieved'))} over the {len(layers)} pruned tensors"
        + (f"; {len(skipped)} selected tensors were skipped (below)." if skipped else ".")
    )
    if not layers:
        return section("sparsity", "Sparsity per layer", lead, missing("no per-layer sparsity"))
    warnings = [note(f"Warning: {w}") for w in sparsity.get("warnings") or [] if w]
    return section(
        "sparsity",
        "Sparsity per layer",
        lead,
        *warnings,
        _sparsity_chart(sparsity, layers),
        _sparsity_table(layers),
        *([_skipped_table(skipped)] if skipped else []),
    )


def layer_label(layer: Mapping[str, Any]) -> str:
    """The node a user recognises first; the tensor name where the report has no node."""
    return str(layer.get("node") or layer.get("name") or "?")


def layer_sparsity(layer: Mapping[str, Any]) -> float | None:
    stated = v.number(layer.get("sparsity"))
    params, nonzeros = v.number(layer.get("parameters")), v.number(layer.get("nonzeros"))
    if stated is None and params and nonzeros is not None:
        return 1 - nonzeros / params
    return stated


def _sparsity_chart(sparsity: Mapping[str, Any], layers: list[Mapping[str, Any]]) -> str:
    shown = _largest(layers)
    bars = [
        Bar(layer_label(layer), layer_sparsity(layer) or 0.0, _sparsity_note(layer))
        for layer in shown
    ]
    target = v.number(sparsity.get("target"))
    markers = [Marker(target, f"target {target:.0%}")] if target is not None else []
    caption = "Fraction of each tensor's weights that are zero; the dashed line is the target."
    if len(shown) < len(layers):
        caption += (
            f" Showing the {len(shown)} largest of {len(layers)} tensors; the table lists all."
        )
    chart = hbar_chart(
        "chart-sparsity",
        "Sparsity per layer",
        "Horizontal bars: share of zero weights in each prunable tensor, 0 to 100 percent.",
        bars,
        x_max=1.0,
        x_format=lambda x: f"{x:.0%}",
        x_label="sparsity (share of weights that are zero)",
        markers=markers,
    )
    return figure(chart, caption)


def _largest(layers: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if len(layers) <= MAX_BARS:
        return layers
    by_size = sorted(
        range(len(layers)), key=lambda i: -(v.number(layers[i].get("parameters")) or 0)
    )
    keep = sorted(by_size[:MAX_BARS])  # the largest, still in model order
    return [layers[i] for i in keep]


def _sparsity_note(layer: Mapping[str, Any]) -> str:
    value = layer_sparsity(layer)
    if value is None:
        return v.NOT_MEASURED
    return f"{value:.1%} of {v.count(layer.get('parameters'))}"


def _sparsity_table(layers: list[Mapping[str, Any]]) -> str:
    rows = [
        [
            layer_label(layer),
            str(layer.get("name", "?")) if layer.get("node") else "",  # else the first column
            str(layer.get("op_type") or ""),
            v.shape(layer.get("shape")),
            v.count(layer.get("parameters")),
            v.count(layer.get("nonzeros")),
            v.percent(layer_sparsity(layer)),
        ]
        for layer in layers
    ]
    headers = ["Layer", "Tensor", "Op", "Shape", "Parameters", "Nonzeros", "Sparsity"]
    return table("Every pruned tensor", headers, rows, 4)


def _skipped_table(skipped: list[Mapping[str, Any]]) -> str:
    rows = [
        [str(s.get("node") or "(no node)"), str(s.get("tensor", "?")), str(s.get("reason", ""))]
        for s in skipped
    ]
    caption = "Selected tensors left as they are, and why"
    return table(caption, ["Layer", "Tensor", "Reason"], rows, 3)


def magnitude_section(
    before: Tensors | None, after: Tensors | None, counted: MagnitudeHistogram | None = None
) -> str:
    """``counted``: the histogram already binned (the streaming engine bins as it prunes)."""
    heading = "Weight magnitudes before and after"
    hist = counted or magnitude_histogram(before, after)
    if hist is None:
        return section("weights", heading, "", missing("the weights were not given to the report"))
    chart = histogram_chart(
        "chart-weights",
        "Weight magnitude histogram, before and after pruning",
        "Counts of |w| in equal-width bins, log-scaled; exact zeros in a separate column.",
        hist,
    )
    caption = (
        "Pruning empties the small-magnitude bins and moves those weights to the zero column. "
        "Counts are on a log scale, summed over the given tensors."
    )
    if hist.note:
        caption = f"{caption} {hist.note}"
    return section("weights", heading, "", figure(chart, caption))


def storage_section(report: Mapping[str, Any]) -> str:
    storage = v.block(report, "storage")
    formats = _format_sizes(storage)
    dense = v.number(storage.get("dense_bytes"))
    heading = "Storage per format"
    if not formats or not dense:
        return section("storage", heading, "", missing("no storage figures"))
    floor = v.number(v.block(storage, "floor").get("bytes"))
    lead = f"Dense float32: {v.size(dense)}." + (
        f" Floor (computed, not a file): {v.size(floor)}, the mask's entropy plus 32 bits per "
        "kept weight."
        if floor
        else ""
    )
    obtained = _obtained(storage)
    parts = [
        _storage_chart(formats, dense, floor, obtained),
        _storage_table(formats, dense, floor, obtained),
    ]
    per_tensor = v.rows(storage, "layers")
    if per_tensor:
        parts.append(_per_tensor_storage(per_tensor))
    method = v.block(storage, "method")
    if method:
        parts.append(
            details("How each figure was obtained", [(str(k), str(m)) for k, m in method.items()])
        )
    return section("storage", heading, lead, *parts)


def _format_sizes(storage: Mapping[str, Any]) -> dict[str, float]:
    sizes = {}
    for name, raw in v.block(storage, "formats").items():
        value = v.number(raw.get("bytes") if isinstance(raw, Mapping) else raw)
        if value is not None:
            sizes[str(name)] = value
    return dict(sorted(sizes.items(), key=lambda item: item[1]))


def _obtained(storage: Mapping[str, Any]) -> dict[str, str]:
    """How each format's figure was got; reports from before `obtained` existed measured all."""
    return {str(k): str(how) for k, how in v.block(storage, "obtained").items()}


def _storage_chart(
    formats: dict[str, float], dense: float, floor: float | None, obtained: Mapping[str, str]
) -> str:
    bars = [Bar("dense float32", dense, f"{v.size(dense)} · 100%", DENSE)]
    bars += [
        Bar(name, b, f"{v.size(b)} · {b / dense:.1%} of dense" + _flag(obtained.get(name)), PRUNED)
        for name, b in formats.items()
    ]
    markers = [Marker(floor, f"entropy floor {v.size(floor)}")] if floor else []
    unit = 1024.0 ** min(3, int(math.log(max(dense, 1), 1024)))
    chart = hbar_chart(
        "chart-storage",
        "Storage per format",
        "Horizontal bars: bytes of each format, with dense float32 for reference "
        "and a dashed line at the entropy floor.",
        bars,
        x_max=unit * nice_max(max([dense, *formats.values()]) / unit),
        x_format=lambda b: v.size(b, compact=True),
        unit=unit,
        x_label="bytes",
        markers=markers,
    )
    caption = (
        "Files are measured on disk; CSR and bitmask are computed from each tensor's shape and "
        "nonzero count (exact for those encodings); _zip and _zstd are the files compressed, "
        "measured or estimated from a sample as the table below says. The floor is n·H(p) "
        "bits per tensor for the mask plus 32 bits per kept weight: it bounds formats that keep "
        "raw float32 values, while compressors can dip below it by squeezing the values too."
    )
    return figure(chart, caption)


def _flag(how: str | None) -> str:
    return " · estimated" if how and how.startswith("estimated") else ""


def _per_tensor_storage(layers: list[Mapping[str, Any]]) -> str:
    rows = [
        [
            str(layer.get("name", "?")),
            v.percent(layer.get("density")),
            v.size(layer.get("csr_bytes")),
            v.size(layer.get("bitmask_bytes")),
            v.size(_bytes_from_bits(layer.get("floor_bits"))),
            str(layer.get("sparse_npz_encoding", v.NOT_MEASURED)),
        ]
        for layer in layers
    ]
    headers = ["Tensor", "Density", "CSR", "Bitmask", "Floor (bound)", "In sparse_npz as"]
    return table(
        "Per tensor: bytes of each encoding (computed from counts) and the floor", headers, rows
    )


def _bytes_from_bits(bits: object) -> float | None:
    n = v.number(bits)
    return None if n is None else n / 8


def _storage_table(
    formats: dict[str, float], dense: float, floor: float | None, obtained: Mapping[str, str]
) -> str:
    rows = [["dense float32", v.count(dense), v.size(dense), "100.0%", "computed from counts"]]
    rows += [
        [name, v.count(b), v.size(b), v.percent(b / dense), obtained.get(name, "measured")]
        for name, b in formats.items()
    ]
    if floor:
        rows.append(
            [
                "entropy floor (bound)",
                v.count(floor),
                v.size(floor),
                v.percent(floor / dense),
                "computed (a bound, not a file)",
            ]
        )
    headers = ["Format", "Bytes", "Size", "Of dense float32", "Obtained"]
    return table("Bytes per format", headers, rows)
