"""Sections about running the model: output quality, training, and timings (latency has
its own module)."""

from collections.abc import Mapping
from typing import Any

from pruning.html import values as v
from pruning.html.cards import fidelity_block
from pruning.html.curves import LOSS, SPARSITY, Curve, training_chart
from pruning.html.layout import figure, missing, section
from pruning.html.tables import table


def quality_section(report: Mapping[str, Any]) -> str:
    quality = v.block(report, "quality")
    columns = _fidelity_columns(report)
    parts = []
    if columns:
        rows = [
            [label, *(fmt(block.get(key)) for _, block in columns)]
            for label, key, fmt in (
                ("Output cosine similarity", "output_cosine", lambda x: v.decimal(x, 4)),
                ("Max absolute difference", "max_abs_diff", lambda x: v.decimal(x, 4)),
                ("Top-1 agreement", "top1_agreement", v.percent),
            )
        ]
        headers = ["Measure", *(f"On {name}" for name, _ in columns)]
        parts.append(table("Pruned outputs compared with dense outputs", headers, rows))
        parts += [
            missing(f"fidelity on {name}: {block.get('reason') or 'no reason given'}")
            for name, block in columns
            if block.get("measured") is False
        ]
    else:
        parts.append(missing("no fidelity figures"))
    metric = v.block(quality, "metric")
    if metric:
        parts.append(_metric_table(metric))
    return section("quality", "Fidelity and metric", "", *parts)


def _fidelity_columns(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The headline first (real data when the job had some), then the synthetic figure."""
    quality = v.block(report, "quality")
    headline = fidelity_block(report)
    synthetic = v.block(quality, "synthetic_fidelity")
    if "source" not in v.block(quality, "fidelity") and headline is not v.block(
        quality, "fidelity"
    ):
        synthetic = v.block(quality, "fidelity")  # an older report: it was the synthetic one
    blocks = [b for b in (headline, synthetic) if b]
    return [(_column_name(b), b) for b in blocks]


def _column_name(block: Mapping[str, Any]) -> str:
    source = str(block.get("source", "synthetic inputs"))
    samples = v.number(block.get("samples"))
    if samples is None or source == "synthetic inputs":
        return source
    return f"{v.count(samples)} samples of {source}"


def _metric_table(metric: Mapping[str, Any]) -> str:
    name = str(metric.get("name", "metric"))
    fmt = v.percent if name == "accuracy" else v.decimal
    caption = f"{name} on dataset {metric.get('dataset_id', '?')}"
    rows = [[name, fmt(metric.get("dense")), fmt(metric.get("pruned"))]]
    return table(caption, ["Metric", "Dense", "Pruned"], rows)


def training_section(report: Mapping[str, Any]) -> str | None:
    """None when the job did not train: the section would only say so."""
    points = v.rows(v.block(report, "training"), "curve")
    if not points:
        return None
    curves = [
        Curve("Training loss", "loss", _series(points, "loss"), LOSS),
        Curve(
            "Sparsity during training", "sparsity", _series(points, "sparsity"), SPARSITY, 1.0, True
        ),
    ]
    drawn = [c for c in curves if c.points]
    if not drawn:
        return section("training", "Training", "", missing("the curve has no numeric points"))
    chart = training_chart(
        "chart-training",
        "Loss and sparsity over training",
        "Line charts against the training step: the loss, and the share of pruned weights.",
        drawn,
    )
    return section(
        "training", "Training", "", figure(chart, "Loss and sparsity at each logged step.")
    )


def _series(points: list[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    pairs = [(v.number(p.get("step")), v.number(p.get(key))) for p in points]
    return [(s, y) for s, y in pairs if s is not None and y is not None]


def timings_section(report: Mapping[str, Any]) -> str:
    timings = v.block(report, "timings")
    if not timings:
        return section("timings", "Timings", "", missing("no timings"))
    rows = [
        [str(name).removesuffix("_s").replace("_", " "), v.seconds(t)]
        for name, t in timings.items()
    ]
    return section(
        "timings", "Timings", "", table("Wall-clock time per stage", ["Stage", "Time"], rows)
    )
