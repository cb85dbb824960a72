"""Sections about running the model: latency, output quality, training, and timings."""

from collections.abc import Mapping
from typing import Any

from pruning.html import values as v
from pruning.html.bars import LatencyPanel, latency_chart
from pruning.html.curves import LOSS, SPARSITY, Curve, training_chart
from pruning.html.layout import figure, missing, note, section
from pruning.html.tables import table


def latency_section(report: Mapping[str, Any]) -> str:
    latency = v.block(report, "latency")
    results = v.rows(latency, "results")
    lead = (
        f"Runtime {latency.get('runtime', v.NOT_MEASURED)}, "
        f"{v.count(latency.get('threads'))} thread(s); times per call."
        if latency
        else ""
    )
    panels = [p for p in (_panel(r) for r in results) if p is not None]
    if not panels:
        return section("latency", "Latency, dense vs pruned", lead, missing("no latency results"))
    chart = latency_chart(
        "chart-latency",
        "Latency, dense vs pruned, per batch size",
        "For each batch size, bars of median latency in milliseconds for the dense and the "
        "pruned model, with whiskers up to the 95th percentile.",
        panels,
    )
    parts = [figure(chart, "Each batch size has its own scale. Bars: median; whiskers: p95.")]
    if latency.get("note"):
        parts.append(note(str(latency["note"])))
    parts.append(_latency_table(results))
    return section("latency", "Latency, dense vs pruned", lead, *parts)


def _panel(result: Mapping[str, Any]) -> LatencyPanel | None:
    dense, pruned = v.block(result, "dense_ms"), v.block(result, "pruned_ms")
    figures = [v.number(m.get(q)) for m in (dense, pruned) for q in ("p50", "p95")]
    batch = v.number(result.get("batch_size"))
    if batch is None or any(f is None for f in figures):
        return None
    d50, d95, p50, p95 = (f or 0.0 for f in figures)
    return LatencyPanel(
        int(batch), (d50, max(d95, d50)), (p50, max(p95, p50)), _speedup_words(result)
    )


def _speedup_words(result: Mapping[str, Any]) -> str:
    speedup = v.number(result.get("speedup"))
    if speedup is None:
        return "speedup not measured"
    return f"{v.speedup(speedup)} " + ("faster" if speedup >= 1 else "(slower)")


def _latency_table(results: list[Mapping[str, Any]]) -> str:
    rows = []
    for r in results:
        dense, pruned = v.block(r, "dense_ms"), v.block(r, "pruned_ms")
        rows.append(
            [
                v.count(r.get("batch_size")),
                v.milliseconds(dense.get("p50")),
                v.milliseconds(dense.get("p95")),
                v.milliseconds(pruned.get("p50")),
                v.milliseconds(pruned.get("p95")),
                v.speedup(r.get("speedup")),
            ]
        )
    headers = ["Batch size", "Dense p50", "Dense p95", "Pruned p50", "Pruned p95", "Speedup"]
    return table("Latency per batch size", headers, rows, 0)


def quality_section(report: Mapping[str, Any]) -> str:
    quality = v.block(report, "quality")
    fidelity = v.block(quality, "fidelity")
    parts = []
    metric = v.block(quality, "metric")
    on_data = v.block(metric, "fidelity")
    if fidelity:
        columns = [("synthetic inputs", fidelity)]
        if on_data:
            columns.append((f"{v.count(on_data.get('samples'))} evaluation samples", on_data))
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
    else:
        parts.append(missing("no fidelity figures"))
    if metric:
        parts.append(_metric_table(metric))
    return section("quality", "Fidelity and metric", "", *parts)


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
