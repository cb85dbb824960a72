"""The header's cards: what a reader takes away before scrolling, so they lead with what was
measured on real data (the evaluation's metric, fidelity on data) and never present a figure
that could not show a difference, or a speedup inside the noise, as a result."""

from collections.abc import Mapping
from typing import Any

from pruning.html import values as v
from pruning.html.latency_section import speed_card

Card = tuple[str, str, str]
SYNTHETIC = "synthetic inputs"
ARROW = "\N{RIGHTWARDS ARROW}"
# Files a job writes for the user, with what to call them; csr and bitmask are computed sizes.
DELIVERED = {"file": "the pruned model", "sparse_npz": "sparse .npz", "onnx_sparse": "sparse ONNX"}


def header_cards(report: Mapping[str, Any]) -> list[Card]:
    fidelity = fidelity_block(report)
    on_data = fidelity.get("source", SYNTHETIC) != SYNTHETIC
    real = [c for c in (_metric_card(report),) if c is not None]
    if on_data:
        real.append(fidelity_card(report))
    rest = [_sparsity_card(report), delivered_card(report), speed_card(report)]
    return real + rest + ([] if on_data else [fidelity_card(report)])


def fidelity_block(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """The headline fidelity; a report from before it named its source, with evaluation
    figures beside synthetic ones, has its evaluation block promoted."""
    quality = v.block(report, "quality")
    headline = v.block(quality, "fidelity")
    on_evaluation = v.block(v.block(quality, "metric"), "fidelity")
    if "source" not in headline and on_evaluation:
        return {**on_evaluation, "source": "evaluation data"}
    return headline


def fidelity_card(report: Mapping[str, Any]) -> Card:
    fidelity = fidelity_block(report)
    source = str(fidelity.get("source", SYNTHETIC))
    if fidelity.get("measured") is False:
        return "Output cosine", v.NOT_MEASURED, f"on {source}: {fidelity.get('reason', '')}"
    samples = v.number(fidelity.get("samples"))
    where = f"{v.count(samples)} samples of {source}" if samples is not None else source
    agreement = v.number(fidelity.get("top1_agreement"))
    top1 = "" if agreement is None else f"top-1 agreement {v.percent(agreement)}, "
    return "Output cosine", v.decimal(fidelity.get("output_cosine"), 4), f"{top1}on {where}"


def _metric_card(report: Mapping[str, Any]) -> Card | None:
    """Dense -> pruned on the evaluation data: the figure a user decides on."""
    metric = v.block(v.block(report, "quality"), "metric")
    if not metric:
        return None
    name = str(metric.get("name", "metric"))
    fmt = v.percent if name == "accuracy" else v.decimal
    dense, pruned = metric.get("dense"), metric.get("pruned")
    value = f"{fmt(dense)} {ARROW} {fmt(pruned)}"
    if v.number(dense) is None or v.number(pruned) is None:
        value = v.NOT_MEASURED
    held = "in-sample" if metric.get("in_sample") else "evaluation data"
    samples = v.number(metric.get("samples"))
    detail = f"dense {ARROW} pruned, {held}, dataset {metric.get('dataset_id', '?')}"
    if samples is not None:
        detail += f", {v.count(samples)} samples"
    return name.capitalize(), value, detail


def _sparsity_card(report: Mapping[str, Any]) -> Card:
    sparsity = v.block(report, "sparsity")
    return (
        "Sparsity",
        v.percent(sparsity.get("achieved")),
        f"target {v.percent(sparsity.get('target'))}",
    )


def delivered_card(report: Mapping[str, Any]) -> Card:
    """The size of what the user downloads, not the smallest size some format could reach."""
    storage = v.block(report, "storage")
    formats = v.block(storage, "formats")
    model = v.number(formats.get("file"))
    if model is None:
        return "Delivered file", v.NOT_MEASURED, ""
    kind = v.block(report, "engine").get("format")
    what = f"pruned {kind} model" if isinstance(kind, str) else "pruned model"
    upload = v.number(formats.get("dense_file"))
    if upload:
        detail = f"{what}, {model / upload:.1%} of the upload ({v.size(upload)})"
    else:
        dense = v.number(storage.get("dense_bytes"))
        detail = f"{what}, {model / dense:.1%} of dense float32" if dense else what
    extra = [
        f"{label} {v.size(formats.get(key))}"
        for key, label in DELIVERED.items()
        if key != "file" and v.number(formats.get(key)) is not None
    ]
    if extra:
        detail += "; also delivered: " + ", ".join(extra)
    return "Delivered file", v.size(model), detail
